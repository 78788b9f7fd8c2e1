//! Qianniu's quick-phrase CSV (千牛 快捷短语 导入/导出).
//!
//! Header `快捷短语编码,快捷短语,快捷短语分组` (older exports: `快捷编码,…`), then one
//! phrase a row: code, text, group (blank: ungrouped). Inside cells Qianniu writes `&#13;`
//! for a line break and `&#44;` for a comma. Files come as GBK/GB18030 from Windows or as
//! UTF-8 with or without a BOM; export writes GBK unless asked otherwise, because that is
//! what Qianniu reads.
//!
//! Import is all or nothing: any bad row makes the whole file an error naming every bad
//! line. Duplicates and codes longer than Qianniu allows are reported, never changed.

use std::collections::HashMap;
use std::path::Path;

use crate::rules::DataError;

use super::quick::{MAX_CODE_CHARS, Phrase};

/// Header names accepted for the code column.
const CODE_HEADERS: &[&str] = &["快捷短语编码", "快捷编码"];
const TEXT_HEADER: &str = "快捷短语";
const GROUP_HEADER: &str = "快捷短语分组";

/// The header export writes.
pub const HEADER: &str = "快捷短语编码,快捷短语,快捷短语分组";

/// A text encoding of a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GBK, or GB18030 which is its superset (what Windows Excel and Qianniu write).
    Gbk,
    /// UTF-8 (a BOM is accepted on import and not written on export).
    Utf8,
}

impl Encoding {
    /// Parses `gbk`, `gb18030` or `utf-8`/`utf8`.
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

/// One phrase row read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line where the row starts.
    pub line: usize,
    /// Shortcut code.
    pub code: String,
    /// Text with `&#13;`/`&#44;` already turned into a line break and a comma.
    pub text: String,
    /// Group; empty means ungrouped.
    pub group: String,
}

impl Row {
    /// The row as a phrase of the given owner (`None`: team).
    pub fn into_phrase(self, agent: Option<&str>) -> Phrase {
        Phrase { agent: agent.map(str::to_string), code: self.code, text: self.text, group: self.group }
    }
}

/// A file that read cleanly.
#[derive(Debug, Clone)]
pub struct Import {
    /// The rows, in file order.
    pub rows: Vec<Row>,
    /// The encoding the file was found to be in.
    pub encoding: Encoding,
    /// Duplicates and over-long codes: imported as they are, but the shop should know.
    pub warnings: Vec<DataError>,
}

/// Decodes a file: a UTF-8 BOM or valid UTF-8 means UTF-8, anything else must be GB18030.
pub fn decode(file: &Path, bytes: &[u8]) -> Result<(String, Encoding), DataError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest).map(|s| (s.to_string(), Encoding::Utf8)).map_err(|e| {
            DataError::at(file, None, format!("starts with a UTF-8 BOM but is not UTF-8: {e}"))
        });
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok((s.to_string(), Encoding::Utf8));
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|s| (s.into_owned(), Encoding::Gbk))
        .ok_or_else(|| DataError::at(file, None, "neither UTF-8 nor GBK/GB18030 text"))
}

/// Reads a Qianniu CSV file's bytes; every bad line is named, and no row is returned then.
pub fn import(file: &Path, bytes: &[u8]) -> Result<Import, Vec<DataError>> {
    let (text, encoding) = decode(file, bytes).map_err(|e| vec![e])?;
    let records = split_records(&text);
    let mut errors = Vec::new();
    let mut iter = records.into_iter().filter(|r| !(r.cells.len() == 1 && r.cells[0].trim().is_empty()));
    let Some(header) = iter.next() else {
        return Err(vec![DataError::at(file, None, format!("empty file: expected the header `{HEADER}`"))]);
    };
    let names: Vec<&str> = header.cells.iter().map(|c| c.trim()).collect();
    let header_ok = names.len() >= 2
        && CODE_HEADERS.contains(&names[0])
        && names[1] == TEXT_HEADER
        && names.get(2).is_none_or(|n| *n == GROUP_HEADER)
        && names.len() <= 3;
    if !header_ok {
        return Err(vec![DataError::at(
            file,
            Some(header.line),
            format!(
                "header is `{}`: expected `{HEADER}` (or `快捷编码,快捷短语,快捷短语分组`)",
                names.join(",")
            ),
        )]);
    }
    let columns = names.len();
    let mut rows = Vec::new();
    for r in iter {
        if let Some(e) = r.error {
            errors.push(DataError::at(file, Some(r.line), e));
            continue;
        }
        if r.cells.len() != columns {
            errors.push(DataError::at(
                file,
                Some(r.line),
                format!(
                    "{} cells, expected {columns} (a comma inside a cell must be written &#44;)",
                    r.cells.len()
                ),
            ));
            continue;
        }
        let code = unescape(r.cells[0].trim());
        let text = unescape(&r.cells[1]);
        let group = r.cells.get(2).map(|g| unescape(g.trim())).unwrap_or_default();
        if text.trim().is_empty() {
            errors.push(DataError::at(file, Some(r.line), "phrase text is empty"));
            continue;
        }
        rows.push(Row { line: r.line, code, text, group });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let warnings = warnings(file, &rows);
    Ok(Import { rows, encoding, warnings })
}

fn warnings(file: &Path, rows: &[Row]) -> Vec<DataError> {
    let mut out = Vec::new();
    let mut codes: HashMap<&str, usize> = HashMap::new();
    let mut texts: HashMap<&str, usize> = HashMap::new();
    for r in rows {
        let n = r.code.chars().count();
        if n > MAX_CODE_CHARS {
            out.push(DataError::at(
                file,
                Some(r.line),
                format!("code `{}` has {n} characters; Qianniu allows {MAX_CODE_CHARS}", r.code),
            ));
        }
        if !r.code.is_empty()
            && let Some(first) = codes.insert(&r.code, r.line)
        {
            out.push(DataError::at(
                file,
                Some(r.line),
                format!("duplicate code `{}` (also line {first})", r.code),
            ));
            codes.insert(&r.code, first);
        }
        if let Some(first) = texts.insert(&r.text, r.line) {
            out.push(DataError::at(file, Some(r.line), format!("duplicate text (same as line {first})")));
            texts.insert(&r.text, first);
        }
    }
    out
}

/// Writes phrases as a Qianniu CSV in `encoding`. Fails, naming the codes, when a text
/// has characters GBK cannot hold (e.g. emoji), rather than writing them mangled.
pub fn export(phrases: &[&Phrase], encoding: Encoding) -> Result<Vec<u8>, String> {
    let mut text = String::from(HEADER);
    text.push_str("\r\n");
    for p in phrases {
        text.push_str(&escape(&p.code));
        text.push(',');
        text.push_str(&escape(&p.text));
        text.push(',');
        text.push_str(&escape(&p.group));
        text.push_str("\r\n");
    }
    match encoding {
        Encoding::Utf8 => Ok(text.into_bytes()),
        Encoding::Gbk => {
            let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
            if !unmappable {
                return Ok(bytes.into_owned());
            }
            let bad: Vec<String> = phrases
                .iter()
                .filter(|p| encoding_rs::GBK.encode(&format!("{}{}{}", p.code, p.text, p.group)).2)
                .map(|p| format!("`{}` ({})", p.code, p.text.chars().take(12).collect::<String>()))
                .collect();
            Err(format!(
                "characters GBK cannot hold in: {}; remove them or export with --encoding utf-8",
                bad.join(", ")
            ))
        }
    }
}

/// `&#13;` (and `&#10;`) become a line break, `&#44;` a comma.
fn unescape(cell: &str) -> String {
    if !cell.contains("&#") {
        return cell.to_string();
    }
    cell.replace("&#13;&#10;", "\n").replace("&#13;", "\n").replace("&#10;", "\n").replace("&#44;", ",")
}

fn escape(cell: &str) -> String {
    cell.replace("\r\n", "&#13;").replace(['\r', '\n'], "&#13;").replace(',', "&#44;")
}

struct Record {
    line: usize,
    cells: Vec<String>,
    error: Option<String>,
}

/// Splits text into records. Qianniu writes no quotes, but a file re-saved by Excel may
/// quote cells (RFC 4180), so `"a,b"` and `""` inside quotes are understood too.
fn split_records(text: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let start = line;
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut error = None;
        let mut quoted = false;
        let mut at_cell_start = true;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    error = Some("a quoted cell is never closed".to_string());
                }
                break;
            };
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        cell.push('"');
                    }
                    '"' => quoted = false,
                    '\n' => {
                        line += 1;
                        cell.push('\n');
                    }
                    '\r' => {}
                    _ => cell.push(c),
                }
                continue;
            }
            match c {
                '"' if at_cell_start => {
                    quoted = true;
                    at_cell_start = false;
                }
                ',' => {
                    cells.push(std::mem::take(&mut cell));
                    at_cell_start = true;
                }
                '\r' => {}
                '\n' => {
                    line += 1;
                    break;
                }
                _ => {
                    cell.push(c);
                    at_cell_start = false;
                }
            }
        }
        cells.push(cell);
        out.push(Record { line: start, cells, error });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<(usize, String, String, String)> {
        import(Path::new("q.csv"), text.as_bytes())
            .unwrap()
            .rows
            .into_iter()
            .map(|r| (r.line, r.code, r.text, r.group))
            .collect()
    }

    #[test]
    fn reads_escapes_blank_groups_and_both_headers() {
        let got =
            rows("快捷编码,快捷短语,快捷短语分组\r\nfh,亲&#44;现货&#13;48小时发,发货\r\n\r\nhi,在的,\r\n");
        assert_eq!(
            got,
            vec![
                (2, "fh".into(), "亲,现货\n48小时发".into(), "发货".into()),
                (4, "hi".into(), "在的".into(), String::new()),
            ]
        );
        let got = rows("\u{feff}快捷短语编码,快捷短语,快捷短语分组\n\"a\",\"x,\"\"y\"\"\",g\n");
        assert_eq!(got, vec![(2, "a".into(), "x,\"y\"".into(), "g".into())]);
    }

    #[test]
    fn malformed_file_names_every_bad_line_and_returns_nothing() {
        let text = "快捷短语编码,快捷短语,快捷短语分组\nok,好的,\nbad,多,了,一列\nnull,,g\nok2,也好,\n";
        let errs = import(Path::new("q.csv"), text.as_bytes()).unwrap_err();
        let lines: Vec<Option<usize>> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![Some(3), Some(4)]);
        assert!(errs[0].to_string().starts_with("q.csv:3: 4 cells, expected 3"), "{}", errs[0]);
        let errs = import(Path::new("q.csv"), "编码,短语\nx,y\n".as_bytes()).unwrap_err();
        assert!(errs[0].message.contains("header"), "{}", errs[0]);
    }

    #[test]
    fn duplicates_and_long_codes_are_reported_not_changed() {
        let text = "快捷短语编码,快捷短语,快捷短语分组\nfh,发货,\nfh,另一个,\nabcde,长编码,\nx,发货,\n";
        let imp = import(Path::new("q.csv"), text.as_bytes()).unwrap();
        assert_eq!(imp.rows.len(), 4);
        assert_eq!(imp.rows[2].code, "abcde");
        let msgs: Vec<String> = imp.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                "q.csv:3: duplicate code `fh` (also line 2)",
                "q.csv:4: code `abcde` has 5 characters; Qianniu allows 4",
                "q.csv:5: duplicate text (same as line 2)",
            ]
        );
    }

    #[test]
    fn detects_gbk_and_refuses_garbage() {
        let (gbk, _, _) =
            encoding_rs::GBK.encode("快捷短语编码,快捷短语,快捷短语分组\r\nfh,亲&#13;您好,问候\r\n");
        let imp = import(Path::new("q.csv"), &gbk).unwrap();
        assert_eq!(imp.encoding, Encoding::Gbk);
        assert_eq!(imp.rows[0].text, "亲\n您好");
        assert!(import(Path::new("q.csv"), &[0xFF, 0xFF, 0x00, 0x81]).is_err());
    }

    #[test]
    fn gbk_export_refuses_emoji() {
        let p = Phrase { agent: None, code: "e".into(), text: "好的😀".into(), group: String::new() };
        let err = export(&[&p], Encoding::Gbk).unwrap_err();
        assert!(err.contains("`e`"), "{err}");
        assert!(export(&[&p], Encoding::Utf8).is_ok());
    }
}

//! Qianniu's quick-phrase CSV (千牛 快捷短语 导入/导出).
//!
//! Header `快捷短语编码,快捷短语,快捷短语分组` (older exports: `快捷编码,…`), then one
//! phrase a row: code, text, group (blank: ungrouped). Inside cells Qianniu writes `&#13;`
//! for a line break and `&#44;` for a comma. Files come as GBK/GB18030 from Windows or as
//! UTF-8 with or without a BOM; export writes GBK unless asked otherwise, because that is
//! what Qianniu reads (UTF-8 exports carry a BOM, so Excel shows them right).
//!
//! Import is all or nothing: any bad row makes the whole file an error naming every bad
//! line, and a file with no phrase is refused (it would empty the set). Duplicates and
//! codes longer than Qianniu allows are reported, never changed. Reading and writing go
//! through [`crate::textio`]: strict GBK/UTF-8 decoding (NUL bytes refused), the `csv`
//! crate, and CSV for people on export.

use std::collections::HashMap;
use std::path::Path;

use crate::rules::DataError;
use crate::textio::{Column, Others, PeopleCsv, read_csv_parsed};

use super::quick::{MAX_CODE_CHARS, Phrase};

pub use crate::textio::Encoding;

/// The columns: code (two header spellings), text, and an optional group.
const COLUMNS: [Column; 3] = [
    Column::required("快捷短语编码", &["快捷编码"]),
    Column::required("快捷短语", &[]),
    Column::optional("快捷短语分组", &[]),
];

/// The header export writes.
pub const HEADER: &str = "快捷短语编码,快捷短语,快捷短语分组";

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

/// Reads a Qianniu CSV file's bytes; every bad line is named, and no row is returned then.
/// A file with a header and no phrase is an error too: importing it would empty the set.
pub fn import(file: &Path, bytes: &[u8]) -> Result<Import, Vec<DataError>> {
    let (rows, encoding) = read_csv_parsed(file, bytes, &COLUMNS, Others::Refuse, |r| {
        let text = unescape(r.get(1));
        if text.trim().is_empty() {
            return Err("phrase text is empty".to_string());
        }
        Ok(Row { line: r.line, code: unescape(r.get(0).trim()), text, group: unescape(r.get(2).trim()) })
    })?;
    if rows.is_empty() {
        return Err(vec![DataError::at(
            file,
            None,
            "no phrase after the header: importing it would leave the set empty, so nothing was changed",
        )]);
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

/// Writes phrases as a Qianniu CSV in `encoding` through the CSV-for-people writer
/// (UTF-8 gets a BOM; cells that a spreadsheet would run as a formula get a leading `'`,
/// which [`import`] takes off again). Fails, naming the codes, when a text has characters
/// GBK cannot hold (e.g. emoji), rather than writing them mangled.
pub fn export(phrases: &[&Phrase], encoding: Encoding) -> Result<Vec<u8>, String> {
    let mut csv = PeopleCsv::new(HEADER.split(','));
    for p in phrases {
        csv.row([escape(&p.code), escape(&p.text), escape(&p.group)]);
    }
    match encoding {
        Encoding::Utf8 => Ok(csv.into_utf8_with_bom()),
        Encoding::Gbk => {
            let text = csv.into_text();
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

/// `&#13;` (and `&#10;`) become a line break, `&#44;` a comma; the `'` that export puts
/// before a formula-like cell (or before one already starting with `'`s) is taken off.
fn unescape(cell: &str) -> String {
    let cell = match cell.strip_prefix('\'') {
        Some(rest) if formula_like(rest.trim_start_matches('\'')) => rest,
        _ => cell,
    };
    if !cell.contains("&#") {
        return cell.to_string();
    }
    cell.replace("&#13;&#10;", "\n").replace("&#13;", "\n").replace("&#10;", "\n").replace("&#44;", ",")
}

/// Whether the CSV-for-people writer puts a `'` before this cell.
fn formula_like(cell: &str) -> bool {
    crate::textio::neutralise(cell) != cell
}

/// Qianniu's escapes; a cell that already begins with `'` before a formula character gets
/// one more, so the `'` import takes off leaves it as it was.
fn escape(cell: &str) -> String {
    let cell = match cell.strip_prefix('\'') {
        Some(rest) if formula_like(rest.trim_start_matches('\'')) => format!("''{rest}"),
        _ => cell.to_string(),
    };
    cell.replace("\r\n", "&#13;").replace(['\r', '\n'], "&#13;").replace(',', "&#44;")
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
    fn refuses_nul_bytes_and_a_file_with_no_phrase() {
        let cases: [(&[u8], &str); 3] = [
            (b"\xE5\xBF\xAB\xE6\x8D\xB7\xE7\x9F\xAD\xE8\xAF\xAD\xE7\xBC\x96\xE7\xA0\x81,\xE5\xBF\xAB\xE6\x8D\xB7\xE7\x9F\xAD\xE8\xAF\xAD\nhy,a\0b\n", "q.csv:2: a NUL byte"),
            ("快捷短语编码,快捷短语,快捷短语分组\r\n".as_bytes(), "q.csv: no phrase after the header"),
            ("快捷短语编码,快捷短语,快捷短语分组\r\n\r\n,,\r\n".as_bytes(), "q.csv: no phrase after the header"),
        ];
        for (bytes, want) in cases {
            let errs = import(Path::new("q.csv"), bytes).unwrap_err();
            assert!(errs[0].to_string().starts_with(want), "{}", errs[0]);
        }
    }

    #[test]
    fn export_neutralises_formulas_and_import_takes_the_mark_off() {
        let p = |code: &str, text: &str| Phrase {
            agent: None,
            code: code.into(),
            text: text.into(),
            group: "-".into(),
        };
        let phrases = [p("=1+1", "=HYPERLINK(\"http://x\",\"点我\")"), p("ok", "'=保持原样"), p("n", "-5元")];
        let refs: Vec<&Phrase> = phrases.iter().collect();
        let bytes = export(&refs, Encoding::Utf8).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("\u{feff}快捷短语编码,"), "{text}");
        assert!(text.contains("'=1+1,\"'=HYPERLINK(\"\"http://x\"\"&#44;\"\"点我\"\")\",'-\r\n"), "{text}");
        let back: Vec<(String, String, String)> = import(Path::new("q.csv"), &bytes)
            .unwrap()
            .rows
            .into_iter()
            .map(|r| (r.code, r.text, r.group))
            .collect();
        let want: Vec<(String, String, String)> =
            phrases.iter().map(|p| (p.code.clone(), p.text.clone(), p.group.clone())).collect();
        assert_eq!(back, want);
    }

    #[test]
    fn gbk_export_refuses_emoji() {
        let p = Phrase { agent: None, code: "e".into(), text: "好的😀".into(), group: String::new() };
        let err = export(&[&p], Encoding::Gbk).unwrap_err();
        assert!(err.contains("`e`"), "{err}");
        assert!(export(&[&p], Encoding::Utf8).is_ok());
    }
}

//! CSV through the `csv` crate: reading a data file against the columns a caller expects,
//! and writing CSV for people.
//!
//! Reading: [`read`] decodes the bytes ([`super::decode`]), requires a header that names
//! the expected columns (any order; aliases allowed), understands quoted commas, quotes and
//! line breaks (RFC 4180, as Excel writes them), skips blank lines, and refuses rows with
//! the wrong number of cells. It is all or nothing: every bad line is named, no row is
//! returned then. What a cell must hold is the caller's rule.
//!
//! Writing: [`PeopleCsv`] writes UTF-8 with a BOM (Excel otherwise shows mojibake), CRLF
//! line ends, quotes where needed, and every cell through [`neutralise`] so a value from
//! outside such as `=HYPERLINK(…)` is shown as text, never run as a formula.

use std::borrow::Cow;
use std::path::Path;

use crate::rules::DataError;

use super::decode::{Encoding, decode};
use super::escape::escape_for_terminal;

/// A column the caller expects in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Names are `'static` for a fixed file layout, borrowed for one built from a rule file
/// (the score-input grid's columns are the sheet's indicators).
pub struct Column<'a> {
    /// The name shown in errors (and written by exports).
    pub name: &'a str,
    /// Other header names accepted for it (e.g. a Chinese export's).
    pub aliases: &'a [&'a str],
    /// Whether a file without it is refused.
    pub required: bool,
}

impl<'a> Column<'a> {
    /// A column the file must have.
    pub const fn required(name: &'a str, aliases: &'a [&'a str]) -> Self {
        Self { name, aliases, required: true }
    }

    /// A column the file may have; its cells read as empty when it is absent.
    pub const fn optional(name: &'a str, aliases: &'a [&'a str]) -> Self {
        Self { name, aliases, required: false }
    }

    fn matches(&self, header: &str) -> bool {
        self.name.eq_ignore_ascii_case(header) || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(header))
    }
}

/// What to do with header names that are not expected columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Others {
    /// A shop export with many more columns: ignore them.
    Ignore,
    /// A file kefu defines: an unknown column is a mistake.
    Refuse,
}

/// One data row, its cells in the order of the caller's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line where the row starts (a quoted line break makes a row span lines).
    pub line: usize,
    cells: Vec<String>,
}

impl Row {
    /// The cell of the caller's column `col` (its index in the `columns` given to
    /// [`read`]), untrimmed; empty when the file lacks that optional column.
    pub fn get(&self, col: usize) -> &str {
        self.cells.get(col).map_or("", String::as_str)
    }
}

/// A file that read cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The encoding the file was found to be in.
    pub encoding: Encoding,
    /// Which of the caller's columns the header named.
    pub present: Vec<bool>,
    /// The data rows, in file order, blank lines left out.
    pub rows: Vec<Row>,
}

/// Reads a CSV file's bytes against `columns` (see the module doc). Errors name `file`
/// and the line: undecodable bytes, a missing or wrong header, rows of the wrong width.
pub fn read(file: &Path, bytes: &[u8], columns: &[Column], others: Others) -> Result<Table, Vec<DataError>> {
    let decoded = decode(file, bytes).map_err(|e| vec![e])?;
    let mut table = read_text(file, &decoded.text, columns, others)?;
    table.encoding = decoded.encoding;
    Ok(table)
}

/// [`read`], then `parse` turns each row into a `T` (or says what is wrong with it). Every
/// bad line — the wrong width, or refused by `parse` — is named, all at once, and nothing
/// is returned then; so a caller's own checks are reported together with the file's.
pub fn read_parsed<T>(
    file: &Path,
    bytes: &[u8],
    columns: &[Column],
    others: Others,
    mut parse: impl FnMut(&Row) -> Result<T, String>,
) -> Result<(Vec<T>, Encoding), Vec<DataError>> {
    let decoded = decode(file, bytes).map_err(|e| vec![e])?;
    let (table, mut errors) = read_all(file, &decoded.text, columns, others)?;
    let mut items = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        match parse(row) {
            Ok(item) => items.push(item),
            Err(message) => errors.push(DataError::at(file, Some(row.line), message)),
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(errors);
    }
    Ok((items, decoded.encoding))
}

/// [`read`] over text already decoded (the encoding is reported as UTF-8).
pub fn read_text(
    file: &Path,
    text: &str,
    columns: &[Column],
    others: Others,
) -> Result<Table, Vec<DataError>> {
    let (table, errors) = read_all(file, text, columns, others)?;
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(table)
}

/// The well-formed rows and the errors of the others; `Err` when the file as a whole is bad.
fn read_all(
    file: &Path,
    text: &str,
    columns: &[Column],
    others: Others,
) -> Result<(Table, Vec<DataError>), Vec<DataError>> {
    let mut reader =
        ::csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut records = reader.records().filter(|r| !matches!(r, Ok(rec) if blank(rec)));
    let header = match records.next() {
        None => {
            let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
            let msg = format!("empty file: expected a header line `{}`", names.join(","));
            return Err(vec![DataError::at(file, None, msg)]);
        }
        Some(Err(e)) => return Err(vec![csv_error(file, &e)]),
        Some(Ok(h)) => h,
    };
    let mut lines = LineCounter::new(text);
    let header_line = lines.line(&header);
    let index = header_index(&header, columns, others)
        .map_err(|m| vec![DataError::at(file, Some(header_line), m)])?;
    let width = header.len();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(csv_error(file, &e));
                continue;
            }
        };
        let line = lines.line(&record);
        if record.len() != width {
            let spans =
                record.iter().map(|c| c.trim_end_matches(['\r', '\n']).matches('\n').count()).sum::<usize>();
            let hint = if spans > 0 {
                format!(" (the row spans lines {line}–{}: is a quote left open?)", line + spans)
            } else {
                String::new()
            };
            errors.push(DataError::at(
                file,
                Some(line),
                format!("{} cells, expected {width} as in the header{hint}", record.len()),
            ));
            continue;
        }
        let cells = index.iter().map(|i| i.map(|i| record[i].to_string()).unwrap_or_default()).collect();
        rows.push(Row { line, cells });
    }
    let present = index.iter().map(Option::is_some).collect();
    Ok((Table { encoding: Encoding::Utf8, present, rows }, errors))
}

fn blank(record: &::csv::StringRecord) -> bool {
    record.iter().all(|c| c.trim().is_empty())
}

/// 1-based lines of records' start offsets, counted once over the text as records come
/// in order (the `csv` crate's own line count does not count a quoted line break).
struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        Self { text: text.as_bytes(), offset: 0, line: 1 }
    }

    fn line(&mut self, record: &::csv::StringRecord) -> usize {
        let mut to = record.position().map_or(self.offset, |p| p.byte() as usize).min(self.text.len());
        // After a CRLF the reported start is the LF; a record never starts with a line end.
        while matches!(self.text.get(to), Some(b'\r' | b'\n')) {
            to += 1;
        }
        if to > self.offset {
            self.line += self.text[self.offset..to].iter().filter(|&&b| b == b'\n').count();
            self.offset = to;
        }
        self.line
    }
}

fn csv_error(file: &Path, e: &::csv::Error) -> DataError {
    DataError::at(file, e.position().map(|p| p.line() as usize), e.to_string())
}

/// For each of the caller's columns, its index in the file; or why the header is wrong.
fn header_index(
    header: &::csv::StringRecord,
    columns: &[Column],
    others: Others,
) -> Result<Vec<Option<usize>>, String> {
    let expected = || columns.iter().map(|c| c.name).collect::<Vec<_>>().join(",");
    let names: Vec<&str> = header.iter().map(str::trim).collect();
    let mut index = vec![None; columns.len()];
    let mut unknown = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match columns.iter().position(|c| c.matches(name)) {
            Some(c) if index[c].is_some() => {
                return Err(format!("column `{}` appears twice in the header", columns[c].name));
            }
            Some(c) => index[c] = Some(i),
            None => unknown.push(*name),
        }
    }
    if index.iter().all(Option::is_none) {
        let first = names.join(",");
        let first = escape_for_terminal(&first);
        return Err(format!(
            "no header line: the first line is `{first}`; expected the column names `{}`",
            expected()
        ));
    }
    let missing: Vec<String> = columns
        .iter()
        .zip(&index)
        .filter(|(c, i)| c.required && i.is_none())
        .map(|(c, _)| match c.aliases {
            [] => format!("`{}`", c.name),
            aliases => format!("`{}` (or `{}`)", c.name, aliases.join("`, `")),
        })
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the header lacks {}; expected the column names `{}`",
            missing.join(", "),
            expected()
        ));
    }
    if others == Others::Refuse && !unknown.is_empty() {
        let unknown: Vec<String> = unknown.iter().map(|u| format!("`{}`", escape_for_terminal(u))).collect();
        return Err(format!(
            "unknown column {}; expected the column names `{}`",
            unknown.join(", "),
            expected()
        ));
    }
    Ok(index)
}

/// A CSV written for people (reports, exports): UTF-8 with BOM, every cell neutralised.
pub struct PeopleCsv {
    writer: ::csv::Writer<Vec<u8>>,
}

impl PeopleCsv {
    /// Starts a file with its header row.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let writer = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::CRLF)
            .flexible(true)
            .from_writer(Vec::new());
        let mut out = Self { writer };
        out.row(header);
        out
    }

    /// Appends a row; each cell goes through [`neutralise`].
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let record: Vec<String> = cells_of(cells);
        // Writing into a Vec has no I/O to fail, and every cell is a valid `str`.
        self.writer.write_record(&record).expect("a CSV row written into memory");
    }

    /// The file's bytes: a UTF-8 BOM, then the rows.
    pub fn into_utf8_with_bom(self) -> Vec<u8> {
        let mut out = b"\xEF\xBB\xBF".to_vec();
        out.extend_from_slice(self.into_text().as_bytes());
        out
    }

    /// The rows as text without a BOM, for a caller that encodes otherwise (GBK for 千牛).
    pub fn into_text(self) -> String {
        let bytes = self.writer.into_inner().map_err(|e| e.into_error()).expect("flushing a Vec");
        // Every cell written was a `str`, and the writer adds only ASCII.
        String::from_utf8(bytes).expect("CSV of `str` cells is UTF-8")
    }
}

fn cells_of<I, S>(cells: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    cells.into_iter().map(|c| neutralise(c.as_ref()).into_owned()).collect()
}

/// A cell that a spreadsheet would run as a formula (it begins with `=`, `+`, `-`, `@`, a
/// tab or a CR) gets a leading `'`, so it is shown as text. A plain negative number
/// (`-12`, `-0.5`) is left as it is: it cannot be a formula and must stay a number.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    let risky = matches!(cell.as_bytes().first(), Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'));
    if risky && !plain_negative_number(cell) { Cow::Owned(format!("'{cell}")) } else { Cow::Borrowed(cell) }
}

fn plain_negative_number(cell: &str) -> bool {
    let Some(digits) = cell.strip_prefix('-') else { return false };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [Column; 3] = [
        Column::required("agent", &["客服"]),
        Column::required("points", &[]),
        Column::optional("reason", &["原因"]),
    ];

    type Rows = Vec<(usize, Vec<String>)>;

    fn read_str(text: &str, others: Others) -> Result<Rows, Vec<String>> {
        read(Path::new("d.csv"), text.as_bytes(), &COLUMNS, others)
            .map(|t| {
                t.rows.iter().map(|r| (r.line, (0..3).map(|c| r.get(c).to_string()).collect())).collect()
            })
            .map_err(|es| es.iter().map(ToString::to_string).collect())
    }

    fn row(line: usize, cells: [&str; 3]) -> (usize, Vec<String>) {
        (line, cells.iter().map(|c| c.to_string()).collect())
    }

    #[test]
    fn reads_quoted_commas_line_breaks_aliases_and_any_order() {
        let cases: Vec<(&str, Rows)> = vec![
            ("agent,points,reason\nA,-2,\"迟到,早退\"\n", vec![row(2, ["A", "-2", "迟到,早退"])]),
            (
                "原因,客服,points\r\n\"第一行\r\n第二行\",B,3\r\n\r\nC,C,1\r\n",
                vec![row(2, ["B", "3", "第一行\r\n第二行"]), row(5, ["C", "1", "C"])],
            ),
            ("\n客服,points\nA,\"say \"\"hi\"\"\"\n", vec![row(3, ["A", "say \"hi\"", ""])]),
            ("agent,points,reason\n", vec![]),
        ];
        for (text, want) in cases {
            assert_eq!(read_str(text, Others::Refuse), Ok(want), "{text:?}");
        }
        let gbk = encoding_rs::GBK.encode("客服,points\n张三,1\n").0.into_owned();
        let t = read(Path::new("g.csv"), &gbk, &COLUMNS, Others::Refuse).unwrap();
        assert_eq!(
            (t.encoding, t.rows[0].get(0), t.present.clone()),
            (Encoding::Gbk, "张三", vec![true, true, false])
        );
    }

    #[test]
    fn refuses_headerless_and_wrong_headers_and_rows() {
        let cases: Vec<(&str, Others, Vec<&str>)> = vec![
            (
                "A,2,迟到\nB,3,x\n",
                Others::Ignore,
                vec![
                    "d.csv:1: no header line: the first line is `A,2,迟到`; expected the column names `agent,points,reason`",
                ],
            ),
            ("", Others::Ignore, vec!["d.csv: empty file: expected a header line `agent,points,reason`"]),
            (
                "reason,agent\nx,A\n",
                Others::Ignore,
                vec!["d.csv:1: the header lacks `points`; expected the column names `agent,points,reason`"],
            ),
            (
                "agent,points,note\n",
                Others::Refuse,
                vec!["d.csv:1: unknown column `note`; expected the column names `agent,points,reason`"],
            ),
            (
                "agent,客服,points\n",
                Others::Ignore,
                vec!["d.csv:1: column `agent` appears twice in the header"],
            ),
            (
                "agent,points\nA,1\nB,2,3\nC\nD,4\n",
                Others::Ignore,
                vec![
                    "d.csv:3: 3 cells, expected 2 as in the header",
                    "d.csv:4: 1 cells, expected 2 as in the header",
                ],
            ),
            (
                "agent,points,reason\nA,\"1,x\nB,2,y\n",
                Others::Ignore,
                vec![
                    "d.csv:2: 2 cells, expected 3 as in the header (the row spans lines 2–3: is a quote left open?)",
                ],
            ),
        ];
        for (text, others, want) in cases {
            assert_eq!(read_str(text, others), Err(want.iter().map(|s| s.to_string()).collect()), "{text:?}");
        }
        // Extra columns of a shop export are ignored when asked.
        assert_eq!(read_str("agent,x,points\nA,?,1\n", Others::Ignore), Ok(vec![row(2, ["A", "1", ""])]));
    }

    #[test]
    fn neutralises_formula_cells_but_not_plain_numbers() {
        let cases = [
            ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
            ("+1", "'+1"),
            ("-1+2", "'-1+2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("-", "'-"),
            ("-12", "-12"),
            ("-0.50", "-0.50"),
            ("-.5", "'-.5"),
            ("-1.", "'-1."),
            ("a=b", "a=b"),
            ("客服", "客服"),
            ("", ""),
        ];
        for (cell, want) in cases {
            assert_eq!(neutralise(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn people_csv_has_bom_crlf_quotes_and_neutralised_cells() {
        let mut w = PeopleCsv::new(["agent", "note"]);
        w.row(["=cmd|' /C calc'!A0", "a,b\n\"c\""]);
        w.row(["李四", "-3"]);
        let bytes = w.into_utf8_with_bom();
        let want = "\u{feff}agent,note\r\n'=cmd|' /C calc'!A0,\"a,b\n\"\"c\"\"\"\r\n李四,-3\r\n";
        assert_eq!(String::from_utf8(bytes).unwrap(), want);
        // Read back through the reader, the cells are what was written.
        let cols = [Column::required("agent", &[]), Column::required("note", &[])];
        let t = read(Path::new("r.csv"), want.as_bytes(), &cols, Others::Refuse).unwrap();
        assert_eq!(t.rows[0].get(1), "a,b\n\"c\"");
    }
}

//! Rule files the shop edits (`rules/`), each read by `load(dir)` and parsed by `parse(&str)`.
//!
//! Every file has a default embedded in the binary, so kefu runs with no files at all;
//! a file present in the rules folder replaces its default.

pub mod response_time;

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in a data file, located for the person who edits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    /// The file (or `<embedded>/name` for a built-in default).
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for DataError {}

impl DataError {
    /// An error at a known line.
    pub fn at(file: impl Into<PathBuf>, line: Option<usize>, message: impl Into<String>) -> Self {
        Self { file: file.into(), line, message: message.into() }
    }
}

/// The 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The 1-based line where `needle` first appears (for errors found after parsing).
pub fn line_containing(text: &str, needle: &str) -> Option<usize> {
    text.find(needle).map(|o| line_of(text, o))
}

/// Deserialises TOML, turning a syntax or shape error into a [`DataError`] with its line.
pub fn parse_toml<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, DataError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        DataError::at(file, line, e.message().to_string())
    })
}

/// Reads `dir/name` when `dir` is given and the file exists, else the embedded default.
pub fn read_or_default(
    dir: Option<&Path>,
    name: &str,
    default: &'static str,
) -> Result<(PathBuf, String), DataError> {
    if let Some(dir) = dir {
        let path = dir.join(name);
        if path.exists() {
            return std::fs::read_to_string(&path)
                .map(|t| (path.clone(), t))
                .map_err(|e| DataError::at(&path, None, format!("cannot read: {e}")));
        }
    }
    Ok((PathBuf::from(format!("<embedded>/{name}")), default.to_string()))
}

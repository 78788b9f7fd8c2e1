//! Text that comes from outside (files, the platform) and text written for people.
//!
//! One path for every CSV kefu reads or writes, and one escaper for every terminal or
//! log line that shows outside text:
//!
//! - [`decode`]: bytes of a data file → text: UTF-8 (with or without BOM) or GBK/GB18030,
//!   refusing undecodable bytes and NUL bytes with the file and line.
//! - [`csv`]: [`csv::read`] a CSV file against the columns a caller expects (header required,
//!   quoted commas and line breaks understood, every bad line named), or [`csv::read_parsed`]
//!   to have the caller's row checks reported with the file's; [`csv::PeopleCsv`]
//!   writes CSV for people: UTF-8 with BOM so Excel opens it, formula cells neutralised.
//! - [`escape`]: [`escape_for_terminal`] / [`escape_for_log`]: control characters shown
//!   escaped, long values cut with their length; [`LogFields`] does it for every log field.
//! - [`out`]: stdout for commands; a closed pipe (`| head`) ends them quietly.

pub mod csv;
pub mod decode;
pub mod escape;
pub mod out;

pub use csv::{
    Column, Others, PeopleCsv, Row, Table, neutralise, read as read_csv, read_parsed as read_csv_parsed,
};
pub use decode::{Decoded, Encoding, decode};
pub use escape::{LogFields, escape_cut, escape_for_log, escape_for_terminal};

//! `rules/response_time.toml`: the deadline a buyer's wait is held to, by the agent's load.

use std::path::Path;

use serde::Deserialize;

use super::{DataError, parse_toml, read_or_default};

/// File name inside the rules folder.
pub const FILE: &str = "response_time.toml";
const DEFAULT: &str = include_str!("../../rules/response_time.toml");

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    /// Seconds without a message after which a session closes.
    idle_close_s: u32,
    /// Seconds back from a wait's start in which a conversation counts toward load.
    active_window_s: u32,
    /// Deadline tiers, in order.
    tier: Vec<RawTier>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    /// Highest load this tier covers; absent on the last, catch-all tier.
    max_load: Option<u32>,
    /// Seconds the agent has to answer.
    deadline_s: u32,
}

/// The compiled rule the response clock runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRules {
    /// Milliseconds without a message after which a session closes.
    pub idle_close_ms: i64,
    /// Milliseconds back from a wait's start in which a conversation counts toward load.
    pub active_window_ms: i64,
    /// `(max_load, deadline_ms)` in order; the last has `u32::MAX`.
    pub tiers: Vec<(u32, i64)>,
}

impl Default for ResponseRules {
    fn default() -> Self {
        parse(Path::new("<embedded>/response_time.toml"), DEFAULT)
            .expect("the embedded response_time.toml is valid (tested)")
    }
}

impl ResponseRules {
    /// The deadline in milliseconds for a wait that starts at this load.
    pub fn deadline_ms(&self, load: u32) -> i64 {
        self.tiers
            .iter()
            .find(|(max, _)| load <= *max)
            .map(|&(_, d)| d)
            .unwrap_or_else(|| self.tiers.last().map_or(60_000, |t| t.1))
    }
}

/// Reads the rule from `dir`, or the embedded default when the folder has no such file.
pub fn load(dir: Option<&Path>) -> Result<ResponseRules, DataError> {
    let (path, text) = read_or_default(dir, FILE, DEFAULT)?;
    parse(&path, &text)
}

/// Parses and validates the rule text; `file` is used in error messages.
pub fn parse(file: &Path, text: &str) -> Result<ResponseRules, DataError> {
    let raw: Raw = parse_toml(file, text)?;
    let line = |needle: &str| super::line_containing(text, needle);
    if raw.idle_close_s == 0 {
        return Err(DataError::at(file, line("idle_close_s"), "idle_close_s must be above 0"));
    }
    if raw.tier.is_empty() {
        return Err(DataError::at(file, None, "at least one [[tier]] is required"));
    }
    let mut tiers = Vec::new();
    let mut prev: Option<u32> = None;
    for (i, t) in raw.tier.iter().enumerate() {
        let last = i + 1 == raw.tier.len();
        let max = match (t.max_load, last) {
            (Some(m), _) => m,
            (None, true) => u32::MAX,
            (None, false) => {
                return Err(DataError::at(
                    file,
                    None,
                    format!("tier {} has no max_load: only the last tier may omit it", i + 1),
                ));
            }
        };
        if prev.is_some_and(|p| max <= p) {
            return Err(DataError::at(
                file,
                None,
                format!("tier {}: max_load {max} must be above the previous tier's", i + 1),
            ));
        }
        if t.deadline_s == 0 {
            return Err(DataError::at(file, None, format!("tier {}: deadline_s must be above 0", i + 1)));
        }
        prev = Some(max);
        tiers.push((max, i64::from(t.deadline_s) * 1000));
    }
    Ok(ResponseRules {
        idle_close_ms: i64::from(raw.idle_close_s) * 1000,
        active_window_ms: i64::from(raw.active_window_s) * 1000,
        tiers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_reads_seed_003() {
        let r = ResponseRules::default();
        let cases = [(1, 20_000), (3, 20_000), (4, 60_000), (6, 60_000), (100, 60_000)];
        for (load, want) in cases {
            assert_eq!(r.deadline_ms(load), want, "load {load}");
        }
        assert_eq!(r.idle_close_ms, 1_800_000);
        assert_eq!(r.active_window_ms, 300_000);
    }

    #[test]
    fn errors_name_file_and_line() {
        let p = Path::new("rules/response_time.toml");
        let e = parse(p, "idle_close_s = 10\nactive_window_s = \"x\"\n[[tier]]\ndeadline_s=5\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let e =
            parse(p, "idle_close_s = 10\nactive_window_s = 5\n[[tier]]\ndeadline_s=5\nsla=1\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `sla`"), "{e}");
        let e = parse(
            p,
            "idle_close_s = 10\nactive_window_s = 5\n[[tier]]\ndeadline_s=5\n[[tier]]\ndeadline_s=9\n",
        )
        .unwrap_err();
        assert!(e.message.contains("only the last tier"), "{e}");
        let e = parse(p, "idle_close_s = 10\nactive_window_s = 5\n[[tier]]\nmax_load=4\ndeadline_s=5\n[[tier]]\nmax_load=2\ndeadline_s=9\n").unwrap_err();
        assert!(e.message.contains("above the previous"), "{e}");
    }
}

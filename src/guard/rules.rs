//! The guard's rule files in `rules/`, each with an embedded default:
//!
//! - `guard.toml`: categories (severity, points, senders, phrases, regexes, exceptions) and
//!   the privacy patterns' categories and cue words;
//! - `guard_variants.toml`: the variant table (`"微信" = ["vx", "v信", "薇信"]`);
//! - `guard_t2s.txt`: traditional → simplified characters, one `繁 简` pair a line.
//!
//! Parsing checks what would make a rule silently wrong: an invalid or empty-matching regex,
//! an empty category, a phrase written twice (after normalisation), a phrase its own
//! exception swallows, an exception that can never apply. Every error names file and line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::normalize::Normalizer;
use super::pii::PiiKind;
use crate::event::Sender;
use crate::rules::{DataError, line_of, parse_toml, read_or_default};

/// The categories file.
pub const FILE: &str = "guard.toml";
/// The variant table.
pub const VARIANTS_FILE: &str = "guard_variants.toml";
/// The traditional → simplified table.
pub const T2S_FILE: &str = "guard_t2s.txt";

const DEFAULT: &str = include_str!("../../rules/guard.toml");
const DEFAULT_VARIANTS: &str = include_str!("../../rules/guard_variants.toml");
const DEFAULT_T2S: &str = include_str!("../../rules/guard_t2s.txt");

/// How serious a finding is; `critical` ones raise a live alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Recorded for the daily review only.
    Info,
    /// Recorded and deducted.
    Warn,
    /// Recorded, deducted, and sent to the supervisor at once.
    Critical,
}

impl Severity {
    /// The name used in rule files and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Critical => "critical",
        }
    }

    /// The severity named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Info, Self::Warn, Self::Critical].into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// Phrase categories.
    #[serde(default)]
    category: Vec<RawCategory>,
    /// Personal-data patterns.
    privacy: Option<RawPrivacy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    /// Name shown in reports and stored with each finding.
    name: Spanned<String>,
    /// `info` | `warn` | `critical`.
    severity: Severity,
    /// Points per finding in the daily assessment: 0 or negative.
    points: Spanned<i32>,
    /// Who the category watches; agents when absent.
    senders: Option<Spanned<Vec<Sender>>>,
    /// Literal phrases, matched after normalisation.
    #[serde(default)]
    phrases: Vec<Spanned<String>>,
    /// Regular expressions, run over the normalised text.
    #[serde(default)]
    regexes: Vec<Spanned<String>>,
    /// Allow-list: a hit lying inside one of these is not a finding.
    #[serde(default)]
    exceptions: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrivacy {
    /// Words after which a WeChat id is looked for.
    #[serde(default)]
    wechat_cues: Vec<String>,
    /// Words before a long number that make it an order/waybill number, not a card or ID.
    #[serde(default)]
    number_cues: Vec<String>,
    /// One entry per kind of personal data to flag.
    #[serde(default)]
    rule: Vec<RawPiiRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPiiRule {
    /// `mobile` | `id_card` | `bank_card` | `email` | `wechat`.
    kind: Spanned<String>,
    /// Category name for findings of this kind.
    category: Spanned<String>,
    severity: Severity,
    points: Spanned<i32>,
    senders: Option<Spanned<Vec<Sender>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariants {
    /// Canonical form → the variant forms that stand for it.
    variants: BTreeMap<String, Vec<Spanned<String>>>,
}

/// One category as the matcher uses it; phrases and exceptions already normalised.
#[derive(Debug, Clone)]
pub struct CategoryRule {
    /// Name shown in reports.
    pub name: String,
    /// Severity of each finding.
    pub severity: Severity,
    /// Points per finding (0 or negative).
    pub points: i32,
    /// Senders the category watches.
    pub senders: Vec<Sender>,
    /// `(as written, normalised)` phrases.
    pub phrases: Vec<(String, String)>,
    /// Regular expressions over normalised text.
    pub regexes: Vec<Regex>,
    /// Normalised exceptions.
    pub exceptions: Vec<String>,
    /// The personal-data kind this category flags, for privacy categories.
    pub pii: Option<PiiKind>,
}

/// Everything the guard is built from.
#[derive(Debug, Clone)]
pub struct GuardRules {
    /// Phrase categories, then privacy categories.
    pub categories: Vec<CategoryRule>,
    /// The normaliser built from the t2s and variant tables.
    pub normalizer: Normalizer,
    /// Cue words for WeChat ids.
    pub wechat_cues: Vec<String>,
    /// Cue words marking order numbers.
    pub number_cues: Vec<String>,
}

/// Reads the three files from `dir` (or their embedded defaults) and validates them.
pub fn load(dir: Option<&Path>) -> Result<GuardRules, Vec<DataError>> {
    let read = |name, default| read_or_default(dir, name, default).map_err(|e| vec![e]);
    let (t2s_path, t2s_text) = read(T2S_FILE, DEFAULT_T2S)?;
    let (var_path, var_text) = read(VARIANTS_FILE, DEFAULT_VARIANTS)?;
    let (path, text) = read(FILE, DEFAULT)?;
    let mut errors = Vec::new();
    let t2s = parse_t2s(&t2s_path, &t2s_text).unwrap_or_else(|mut e| {
        errors.append(&mut e);
        Vec::new()
    });
    let variants = parse_variants(&var_path, &var_text, &t2s).unwrap_or_else(|mut e| {
        errors.append(&mut e);
        Vec::new()
    });
    let normalizer = Normalizer::new(&t2s, &variants);
    match parse(&path, &text, normalizer) {
        Ok(rules) if errors.is_empty() => Ok(rules),
        Ok(_) => Err(errors),
        Err(mut e) => {
            errors.append(&mut e);
            Err(errors)
        }
    }
}

/// Parses `guard_t2s.txt`: `繁 简` per line, `#` starts a comment line.
pub fn parse_t2s(file: &Path, text: &str) -> Result<Vec<(char, char)>, Vec<DataError>> {
    let mut pairs = Vec::new();
    let mut errors = Vec::new();
    let mut seen = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let one = |s: Option<&str>| s.and_then(single_char);
        match (one(parts.next()), one(parts.next()), parts.next()) {
            (Some(t), Some(s), None) => {
                if let Some(prev) = seen.insert(t, i + 1) {
                    errors.push(DataError::at(
                        file,
                        Some(i + 1),
                        format!("'{t}' is already mapped at line {prev}"),
                    ));
                }
                pairs.push((t, s));
            }
            _ => errors.push(DataError::at(
                file,
                Some(i + 1),
                format!("expected two single characters `繁 简`, found `{line}`"),
            )),
        }
    }
    if errors.is_empty() { Ok(pairs) } else { Err(errors) }
}

fn single_char(s: &str) -> Option<char> {
    let mut c = s.chars();
    match (c.next(), c.next()) {
        (Some(x), None) => Some(x),
        _ => None,
    }
}

/// Parses `guard_variants.toml` into `(variant, canonical)` pairs.
pub fn parse_variants(
    file: &Path,
    text: &str,
    t2s: &[(char, char)],
) -> Result<Vec<(String, String)>, Vec<DataError>> {
    let raw: RawVariants = parse_toml(file, text).map_err(|e| vec![e])?;
    // Fold with the t2s table only: a variant is compared with the others before replacement.
    let fold = Normalizer::new(t2s, &[]);
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut pairs = Vec::new();
    for (target, forms) in &raw.variants {
        let target_norm = fold.canonical(target);
        for form in forms {
            let at = line_of(text, form.span().start);
            let line = Some(at);
            let norm = fold.canonical(form.get_ref());
            if norm.chars().count() < 2 {
                errors.push(DataError::at(
                    file,
                    line,
                    format!(
                        "variant '{}' folds to '{norm}', under two characters: it would replace that character everywhere",
                        form.get_ref()
                    ),
                ));
            } else if norm == target_norm {
                errors.push(DataError::at(
                    file,
                    line,
                    format!("variant '{}' is its own canonical form", form.get_ref()),
                ));
            } else if let Some(prev) = seen.insert(norm.clone(), at) {
                errors.push(DataError::at(
                    file,
                    line,
                    format!("duplicate variant '{}' (also at line {prev})", form.get_ref()),
                ));
            } else {
                pairs.push((form.get_ref().clone(), target.clone()));
            }
        }
    }
    if errors.is_empty() { Ok(pairs) } else { Err(errors) }
}

/// Parses and validates `guard.toml` text; `file` is used in error messages.
pub fn parse(file: &Path, text: &str, normalizer: Normalizer) -> Result<GuardRules, Vec<DataError>> {
    let raw: RawFile = parse_toml(file, text).map_err(|e| vec![e])?;
    let line = |span: std::ops::Range<usize>| Some(line_of(text, span.start));
    let mut errors = Vec::new();
    let mut err = |l: Option<usize>, m: String| errors.push(DataError::at(file, l, m));
    let mut names: HashMap<String, usize> = HashMap::new();
    // Normalised phrase → (line, category, senders): one phrase in two categories that watch
    // the same sender would flag one message twice. Buyer abuse may share words with agents'.
    let mut phrases_seen: HashMap<String, Vec<(usize, String, Vec<Sender>)>> = HashMap::new();
    let mut categories = Vec::new();
    for c in &raw.category {
        let name = c.name.get_ref().trim().to_string();
        let name_line = line(c.name.span());
        check_name(&name, name_line, &mut names, &mut err);
        check_points(&c.points, line(c.points.span()), &mut err);
        let senders = senders_of(c.senders.as_ref(), &line, &mut err);
        if c.phrases.is_empty() && c.regexes.is_empty() {
            err(name_line, format!("category '{name}' is empty: give at least one phrase or regex"));
        }
        let mut phrases = Vec::new();
        for p in &c.phrases {
            let l = line(p.span());
            let norm = normalizer.canonical(p.get_ref());
            if norm.chars().count() < 2 {
                err(
                    l,
                    format!(
                        "phrase '{}' is shorter than two characters after normalisation ('{norm}'): it would match inside ordinary words",
                        p.get_ref()
                    ),
                );
                continue;
            }
            let earlier = phrases_seen.entry(norm.clone()).or_default();
            if let Some((pl, pc, _)) =
                earlier.iter().find(|(_, _, ps)| ps.iter().any(|s| senders.contains(s)))
            {
                err(
                    l,
                    format!(
                        "duplicate phrase '{}' (normalised '{norm}', already at line {pl} in '{pc}')",
                        p.get_ref()
                    ),
                );
                continue;
            }
            earlier.push((l.unwrap_or(0), name.clone(), senders.clone()));
            phrases.push((p.get_ref().clone(), norm, l));
        }
        let mut regexes = Vec::new();
        for r in &c.regexes {
            let l = line(r.span());
            match Regex::new(r.get_ref()) {
                Err(e) => err(l, format!("invalid regex '{}': {}", r.get_ref(), first_line(&e.to_string()))),
                Ok(re) if re.is_match("") => {
                    err(l, format!("regex '{}' matches the empty text", r.get_ref()))
                }
                Ok(re) => regexes.push(re),
            }
        }
        let mut exceptions = Vec::new();
        for x in &c.exceptions {
            let l = line(x.span());
            let norm = normalizer.canonical(x.get_ref());
            if let Some((p, _, pl)) = phrases.iter().find(|(_, pn, _)| *pn == norm) {
                err(
                    pl.or(l),
                    format!(
                        "phrase '{p}' is swallowed by its own exception '{}' (line {}): it could never be flagged",
                        x.get_ref(),
                        l.unwrap_or(0)
                    ),
                );
                continue;
            }
            let applies = phrases.iter().any(|(_, pn, _)| norm.contains(pn.as_str()))
                || regexes.iter().any(|r| r.is_match(&norm));
            if !applies {
                err(
                    l,
                    format!(
                        "exception '{}' contains none of the category's phrases or regexes, so it never applies",
                        x.get_ref()
                    ),
                );
                continue;
            }
            exceptions.push(norm);
        }
        categories.push(CategoryRule {
            name,
            severity: c.severity,
            points: *c.points.get_ref(),
            senders,
            phrases: phrases.into_iter().map(|(p, n, _)| (p, n)).collect(),
            regexes,
            exceptions,
            pii: None,
        });
    }
    let (mut wechat_cues, mut number_cues) = (Vec::new(), Vec::new());
    if let Some(p) = &raw.privacy {
        wechat_cues.clone_from(&p.wechat_cues);
        number_cues.clone_from(&p.number_cues);
        let mut kinds = HashSet::new();
        for r in &p.rule {
            let kind_line = line(r.kind.span());
            let Some(kind) = PiiKind::parse(r.kind.get_ref()) else {
                let known: Vec<_> = PiiKind::ALL.iter().map(|k| k.as_str()).collect();
                err(
                    kind_line,
                    format!(
                        "unknown privacy kind '{}': expected one of {}",
                        r.kind.get_ref(),
                        known.join(", ")
                    ),
                );
                continue;
            };
            if !kinds.insert(kind) {
                err(kind_line, format!("privacy kind '{}' is listed twice", kind.as_str()));
            }
            let name = r.category.get_ref().trim().to_string();
            check_name(&name, line(r.category.span()), &mut names, &mut err);
            check_points(&r.points, line(r.points.span()), &mut err);
            let senders = senders_of(r.senders.as_ref(), &line, &mut err);
            categories.push(CategoryRule {
                name,
                severity: r.severity,
                points: *r.points.get_ref(),
                senders,
                phrases: Vec::new(),
                regexes: Vec::new(),
                exceptions: Vec::new(),
                pii: Some(kind),
            });
        }
    }
    if categories.is_empty() {
        err(None, "no [[category]] and no [[privacy.rule]]: the guard would check nothing".to_string());
    }
    if errors.is_empty() {
        Ok(GuardRules { categories, normalizer, wechat_cues, number_cues })
    } else {
        Err(errors)
    }
}

fn check_name(
    name: &str,
    l: Option<usize>,
    names: &mut HashMap<String, usize>,
    err: &mut impl FnMut(Option<usize>, String),
) {
    if name.is_empty() {
        err(l, "category name is empty".to_string());
    } else if let Some(prev) = names.insert(name.to_string(), l.unwrap_or(0)) {
        err(l, format!("category '{name}' is defined twice (also at line {prev})"));
    }
}

fn check_points(points: &Spanned<i32>, l: Option<usize>, err: &mut impl FnMut(Option<usize>, String)) {
    if *points.get_ref() > 0 {
        err(l, format!("points = {} must be 0 or negative (a deduction)", points.get_ref()));
    }
}

fn senders_of(
    senders: Option<&Spanned<Vec<Sender>>>,
    line: &impl Fn(std::ops::Range<usize>) -> Option<usize>,
    err: &mut impl FnMut(Option<usize>, String),
) -> Vec<Sender> {
    match senders {
        None => vec![Sender::Agent],
        Some(s) if s.get_ref().is_empty() => {
            err(
                line(s.span()),
                "senders is empty: leave it out for agents, or name who to watch".to_string(),
            );
            Vec::new()
        }
        Some(s) => s.get_ref().clone(),
    }
}

fn first_line(s: &str) -> String {
    s.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(s).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm() -> Normalizer {
        let variants = [("vx".to_string(), "微信".to_string())];
        Normalizer::new(&[('說', '说')], &variants)
    }

    fn errors_of(toml: &str) -> Vec<DataError> {
        match parse(Path::new("rules/guard.toml"), toml, norm()) {
            Ok(_) => Vec::new(),
            Err(e) => e,
        }
    }

    #[test]
    fn the_embedded_defaults_are_valid_and_large_enough() {
        let rules = load(None)
            .unwrap_or_else(|e| panic!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")));
        let phrases: usize = rules.categories.iter().map(|c| c.phrases.len() + c.regexes.len()).sum();
        assert!(phrases >= 200, "only {phrases} entries");
        assert!(rules.categories.iter().any(|c| c.pii.is_some()));
    }

    #[test]
    fn each_mistake_is_named_with_file_and_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("[[category]]\nname='a'\nseverity='warn'\npoints=-1\nregexes=['(ab']\n", 5, "invalid regex"),
            (
                "[[category]]\nname='a'\nseverity='warn'\npoints=-1\nregexes=['x*']\n",
                5,
                "matches the empty text",
            ),
            ("[[category]]\nname='空'\nseverity='warn'\npoints=-1\n", 2, "is empty"),
            (
                "[[category]]\nname='a'\nseverity='warn'\npoints=-1\nphrases=[\n'加微信',\n'加 VX',\n]\n",
                7,
                "duplicate phrase",
            ),
            (
                "[[category]]\nname='a'\nseverity='warn'\npoints=-1\nphrases=['第一']\n[[category]]\nname='b'\nseverity='info'\npoints=0\nphrases=['第 一']\n",
                10,
                "duplicate phrase",
            ),
            (
                "[[category]]\nname='a'\nseverity='warn'\npoints=-1\nphrases=['最好']\nexceptions=['最 好']\n",
                5,
                "swallowed by its own exception",
            ),
            (
                "[[category]]\nname='a'\nseverity='warn'\npoints=-1\nphrases=['最好']\nexceptions=['第一次']\n",
                6,
                "never applies",
            ),
            ("[[category]]\nname='a'\nseverity='warn'\npoints=3\nphrases=['最好']\n", 4, "0 or negative"),
            ("[[category]]\nname='a'\nseverity='loud'\npoints=-1\nphrases=['最好']\n", 3, "unknown variant"),
            ("[[category]]\nname='a'\nseverity='warn'\npoints=-1\nphrases=['好']\n", 5, "shorter than two"),
            (
                "[[category]]\nname='a'\nseverity='warn'\npoints=-1\nphrases=['最好']\n[privacy]\n[[privacy.rule]]\nkind='passport'\ncategory='p'\nseverity='info'\npoints=0\n",
                8,
                "unknown privacy kind",
            ),
        ];
        for &(toml, line, what) in cases {
            let errors = errors_of(toml);
            assert_eq!(errors.len(), 1, "{toml}: {errors:?}");
            let e = &errors[0];
            assert_eq!(e.line, Some(line), "{toml}: {e}");
            assert!(e.message.contains(what), "{toml}: {e}");
            assert!(e.to_string().starts_with(&format!("rules/guard.toml:{line}: ")), "{e}");
        }
    }

    #[test]
    fn one_phrase_may_serve_categories_watching_different_senders() {
        let toml = "[[category]]\nname='a'\nseverity='warn'\npoints=-1\nphrases=['傻逼']\n[[category]]\nname='b'\nseverity='info'\npoints=0\nsenders=['customer']\nphrases=['傻 逼']\n";
        assert!(errors_of(toml).is_empty(), "{:?}", errors_of(toml));
    }

    #[test]
    fn table_files_report_bad_lines() {
        let e = parse_t2s(Path::new("t.txt"), "# c\n說 说\n說說 说\n").unwrap_err();
        assert_eq!((e.len(), e[0].line), (1, Some(3)));
        let e = parse_variants(Path::new("v.toml"), "[variants]\n\"微信\" = [\n\"vx\",\n\"VX\",\n]\n", &[])
            .unwrap_err();
        assert_eq!(e[0].line, Some(4), "{}", e[0]);
        assert!(e[0].message.contains("duplicate variant"));
        let e = parse_variants(Path::new("v.toml"), "[variants]\n\"qq\" = [\"扣扣\"]\n", &[]).unwrap_err();
        assert_eq!(e[0].line, Some(2), "{}", e[0]);
        assert!(e[0].message.contains("under two characters"), "{}", e[0]);
    }
}

//! Auto-answers from misses (未匹配问题 → 自动回复): the buyers' questions no rule answered,
//! grouped as `kefu replies misses --grouped` groups them (`replies::similar::group_misses`,
//! the same index and threshold), most frequent first; from a group a supervisor adds a
//! keyword rule to `replies/auto.toml`. The file is edited with `toml_edit`, so its
//! comments and layout stay; the new text is checked by `replies::auto::parse`, the
//! function `kefu check` runs, before anything is written; it is written to a temporary
//! file and renamed over the old one, so the folder never holds an invalid or half-written
//! file; the running robot is nudged to reload at once.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use rusqlite::Connection;

use crate::replies::auto;
use crate::replies::similar::MissGroup;
use crate::replies::stats::mask_phones_in_text;

/// The day's unanswered questions, grouped, most frequent first; questions masked.
pub fn groups(conn: &Connection, replies: Option<&Path>, day: NaiveDate) -> Result<Vec<MissGroup>, String> {
    let rules = auto::load(replies).map_err(|e| e.to_string())?;
    let mut groups = crate::replies::stats::grouped_misses(conn, &rules, day).map_err(|e| e.to_string())?;
    for g in &mut groups {
        g.question = mask_phones_in_text(&g.question);
        for o in &mut g.others {
            *o = mask_phones_in_text(o);
        }
    }
    Ok(groups)
}

/// The add form as posted.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AddForm {
    /// Rule id (stable name for hit counts).
    #[serde(default)]
    pub id: String,
    /// Qianniu category (问候语, 发货查件 …).
    #[serde(default)]
    pub category: String,
    /// The question as the shop lists it.
    #[serde(default)]
    pub question: String,
    /// Keywords: the rule answers when any occurs (separated by commas, 、 or spaces).
    #[serde(default)]
    pub keywords: String,
    /// The answer.
    #[serde(default)]
    pub answer: String,
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// The day the misses were read from (to come back to).
    #[serde(default)]
    pub day: String,
}

/// The categories a rule may take, in the form's order.
pub const CATEGORIES: [&str; 7] =
    ["自定义问题", "店铺数字问题", "问候语", "导购", "活动优惠", "发货查件", "售后"];

/// The keywords of the form, split and trimmed.
pub fn keywords(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c == '，' || c == '、' || c == ';' || c == '；' || c.is_whitespace())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// The form's fields, each checked for presence and length; the rule itself is then
/// checked by `auto::parse`, as `kefu check` does.
fn fields(form: &AddForm) -> Result<(String, Vec<String>), String> {
    let id = form.id.trim();
    if id.is_empty() || id.chars().count() > 64 || id.chars().any(char::is_control) {
        return Err("id: give the rule a name (1 to 64 characters), e.g. 花呗分期".into());
    }
    let keys = keywords(&form.keywords);
    if keys.is_empty() {
        return Err("keywords: give at least one word the question contains".into());
    }
    if keys.len() > 30 || keys.iter().any(|k| k.chars().count() > 40) {
        return Err("keywords: at most 30 words of at most 40 characters".into());
    }
    let answer = form.answer.trim();
    if answer.is_empty() || answer.chars().count() > 500 {
        return Err("answer: write the answer (1 to 500 characters)".into());
    }
    let question = form.question.trim();
    if question.is_empty() || question.chars().count() > 200 {
        return Err("question: the buyers' question the rule answers (1 to 200 characters)".into());
    }
    Ok((id.to_string(), keys))
}

/// The rule file's text with the form's rule appended as a new `[[rule]]` (comments and
/// layout of the rest untouched), or why not.
pub fn with_rule(text: &str, form: &AddForm, by: &str, today: NaiveDate) -> Result<String, String> {
    let (id, keys) = fields(form)?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{}: {e}", auto::FILE))?;
    let mut rule = toml_edit::Table::new();
    rule.insert("id", toml_edit::value(id));
    rule.insert("category", toml_edit::value(form.category.trim()));
    rule.insert("question", toml_edit::value(form.question.trim()));
    let any: toml_edit::Array = keys.iter().map(String::as_str).collect();
    rule.insert("any", toml_edit::value(any));
    let answers: toml_edit::Array = std::iter::once(form.answer.trim()).collect();
    rule.insert("answers", toml_edit::value(answers));
    rule.decor_mut().set_prefix(format!(
        "\n# Added in the console by {by} on {today}, from unanswered buyer questions.\n"
    ));
    match doc.get_mut("rule") {
        None => {
            let mut rules = toml_edit::ArrayOfTables::new();
            rules.push(rule);
            doc.insert("rule", toml_edit::Item::ArrayOfTables(rules));
        }
        Some(toml_edit::Item::ArrayOfTables(rules)) => rules.push(rule),
        Some(_) => return Err(format!("{}: `rule` is not a list of [[rule]] tables", auto::FILE)),
    }
    Ok(doc.to_string())
}

/// Adds the form's rule to `dir/auto.toml`: the new text must pass `auto::parse` (what
/// `kefu check` runs) or nothing is written. Returns the rule id and the file written.
pub fn add(dir: &Path, form: &AddForm, by: &str, today: NaiveDate) -> Result<PathBuf, String> {
    let path = dir.join(auto::FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        // No file yet: the robot serves the shipped rules; the new file starts from them.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => auto::DEFAULT.to_string(),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    let new = with_rule(&text, form, by, today)?;
    auto::parse(&path, &new).map_err(|e| e.to_string())?;
    let tmp = dir.join(format!(".{}.console-{}", auto::FILE, std::process::id()));
    std::fs::write(&tmp, &new).map_err(|e| format!("{}: cannot write: {e}", tmp.display()))?;
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: cannot replace: {e}", path.display()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(id: &str, category: &str, keywords: &str, answer: &str) -> AddForm {
        AddForm {
            id: id.into(),
            category: category.into(),
            keywords: keywords.into(),
            answer: answer.into(),
            question: "能用花呗分期吗".into(),
            ..AddForm::default()
        }
    }

    const FILE: &str = "# the shop's rules\n\n[[rule]]\nid = \"greet\" # say hello\ncategory = \"问候语\"\nquestion = \"在吗\"\nany = [\"在吗\"]\nanswers = [\"在的\"]\n";

    #[test]
    fn a_rule_is_appended_and_the_comments_stay() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 11).unwrap();
        let out =
            with_rule(FILE, &form("huabei", "活动优惠", "花呗, 分期、 白条", "支持花呗分期哦"), "wang", day)
                .unwrap();
        assert!(out.starts_with(FILE), "the file before is untouched:\n{out}");
        assert!(out.contains("# Added in the console by wang on 2026-11-11"), "{out}");
        assert!(out.contains("any = [\"花呗\", \"分期\", \"白条\"]"), "{out}");
        let rules = auto::parse(Path::new("auto.toml"), &out).unwrap();
        assert_eq!(rules.rules().len(), 2);
    }

    #[test]
    fn a_bad_field_is_named_and_a_bad_rule_is_refused_by_the_check() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 11).unwrap();
        let cases = [
            (form(" ", "活动优惠", "花呗", "x"), "id:"),
            (form("h", "活动优惠", " , ", "x"), "keywords:"),
            (form("h", "活动优惠", "花呗", "  "), "answer:"),
        ];
        for (f, want) in cases {
            let e = with_rule(FILE, &f, "wang", day).unwrap_err();
            assert!(e.starts_with(want), "{e} should start with {want}");
        }
        // A category the check does not know: with_rule writes it, the check refuses it.
        let text = with_rule(FILE, &form("h", "打折", "花呗", "x"), "wang", day).unwrap();
        let e = auto::parse(Path::new("auto.toml"), &text).unwrap_err().to_string();
        assert!(e.contains("auto.toml") && e.contains("打折"), "{e}");
    }

    #[test]
    fn keywords_split_on_commas_and_spaces() {
        assert_eq!(keywords("花呗，分期 、白条;;x"), ["花呗", "分期", "白条", "x"]);
    }
}

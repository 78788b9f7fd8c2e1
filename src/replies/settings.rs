//! `replies/robot.toml`: when and what the robot says, per shop and overridable per agent.
//!
//! `[defaults]` must set every field; `[shops."name"]` and `[agents."name"]` set only what
//! differs. An agent's value wins over the shop's, the shop's over the defaults.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::schedule::{Span, span};
use super::vars::Template;
use crate::rules::{DataError, line_of, parse_toml, read_or_default};

/// File name inside the replies folder.
pub const FILE: &str = "robot.toml";
const DEFAULT: &str = include_str!("../../replies/robot.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    defaults: RawLayer,
    #[serde(default)]
    shops: HashMap<String, RawLayer>,
    #[serde(default)]
    agents: HashMap<String, RawLayer>,
}

/// One layer of settings as written; every field optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    /// 进门问好, sent on a session's first buyer message; `""` turns it off.
    greeting: Option<Spanned<String>>,
    /// Answer for an agent who is away, offline or off shift.
    away: Option<bool>,
    /// Said in away mode when no keyword rule matches (once per wait).
    away_text: Option<Spanned<String>>,
    /// Seconds a buyer waits before a rescue reply; 0 turns rescue off.
    rescue_after_s: Option<u32>,
    /// Said at rescue time when no keyword rule matches.
    rescue_text: Option<Spanned<String>>,
    /// 半自动: suggest matching answers to a present agent.
    suggest: Option<bool>,
    /// At most this many robot messages per conversation per hour.
    max_per_hour: Option<u32>,
    /// Offer of a transfer to another agent in away mode; `""` turns it off.
    transfer_offer: Option<Spanned<String>>,
    /// What the buyer says to accept the transfer.
    transfer_keywords: Option<Vec<String>>,
    /// The robot stays silent when the message it would answer (or the rescue deadline it
    /// would act on) is more than this many seconds behind the wall clock: a backlog
    /// caught up after an outage gets no stale greeting, answer or rescue. Default 20.
    stale_after_s: Option<u32>,
    /// Greet a buyer at most once per Shanghai day (true, the default) rather than once
    /// per session.
    greeting_per_day: Option<bool>,
    /// Treat an agent marked `busy` (千牛 挂起) as away. Default false.
    busy_is_away: Option<bool>,
    /// 人工优先 under load: when the agent has more than this many buyers waiting, a
    /// question a rule answers is answered at once. 0 (the default) turns it off.
    load_answer_above: Option<u32>,
    /// How similar (0 to 1) a question must be to a rule's example to be answered by it.
    similar_threshold: Option<f32>,
    /// 催付: seconds after an order is created, unpaid, before one reminder; 0 = off.
    payment_reminder_after_s: Option<u32>,
    /// The reminder's text; `""` turns it off.
    payment_reminder_text: Option<Spanned<String>>,
    /// No reminder falls due in these daily hours, `HH:MM-HH:MM` (e.g. `22:00-08:00`);
    /// `""` = none.
    quiet_hours: Option<Spanned<String>>,
    /// A robot answer counts as resolved when the buyer does not ask for a human within
    /// this many minutes. Default 10.
    resolved_after_min: Option<u32>,
}

#[derive(Debug, Clone, Default)]
struct Layer {
    greeting: Option<Template>,
    away: Option<bool>,
    away_text: Option<Template>,
    rescue_after_ms: Option<i64>,
    rescue_text: Option<Template>,
    suggest: Option<bool>,
    max_per_hour: Option<u32>,
    transfer_offer: Option<Template>,
    transfer_keywords: Option<Vec<String>>,
    stale_after_ms: Option<i64>,
    greeting_per_day: Option<bool>,
    busy_is_away: Option<bool>,
    load_answer_above: Option<u32>,
    similar_threshold: Option<f32>,
    payment_reminder_after_ms: Option<i64>,
    payment_reminder_text: Option<Template>,
    quiet_hours: Option<Option<Span>>,
    resolved_after_ms: Option<i64>,
}

/// The settings that apply to one conversation.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// Greeting; empty means off.
    pub greeting: &'a Template,
    /// Away mode on.
    pub away: bool,
    /// Away message.
    pub away_text: &'a Template,
    /// Rescue delay in ms; 0 means off.
    pub rescue_after_ms: i64,
    /// Holding answer.
    pub rescue_text: &'a Template,
    /// Suggest to a present agent.
    pub suggest: bool,
    /// Robot messages per conversation per hour.
    pub max_per_hour: u32,
    /// Transfer offer; empty means off.
    pub transfer_offer: &'a Template,
    /// Words accepting the transfer.
    pub transfer_keywords: &'a [String],
    /// How far behind the wall clock a message may be for the robot still to speak to it.
    pub stale_after_ms: i64,
    /// Greet once per buyer per day (else once per session).
    pub greeting_per_day: bool,
    /// `busy` counts as away.
    pub busy_is_away: bool,
    /// Answer known questions at once above this many waiting buyers; 0 = off.
    pub load_answer_above: u32,
    /// Similar-question threshold.
    pub similar_threshold: f32,
    /// 催付 delay in ms; 0 = off.
    pub payment_reminder_after_ms: i64,
    /// 催付 text; empty = off.
    pub payment_reminder_text: &'a Template,
    /// Hours with no 催付.
    pub quiet_hours: Option<Span>,
    /// Window after a robot answer in which a request for a human means not resolved.
    pub resolved_after_ms: i64,
}

/// `[defaults]`, with every field present.
#[derive(Debug, Clone)]
struct Defaults {
    greeting: Template,
    away: bool,
    away_text: Template,
    rescue_after_ms: i64,
    rescue_text: Template,
    suggest: bool,
    max_per_hour: u32,
    transfer_offer: Template,
    transfer_keywords: Vec<String>,
    stale_after_ms: i64,
    greeting_per_day: bool,
    busy_is_away: bool,
    load_answer_above: u32,
    similar_threshold: f32,
    payment_reminder_after_ms: i64,
    payment_reminder_text: Template,
    quiet_hours: Option<Span>,
    resolved_after_ms: i64,
}

/// The built-in similar-question threshold (see `docs/replies.md` for how it was chosen).
pub const DEFAULT_SIMILAR_THRESHOLD: f32 = 0.5;

/// The built-in `stale_after_s` when `[defaults]` does not set it: long enough for a live
/// batch and a rescue to go out, far shorter than any outage.
pub const DEFAULT_STALE_AFTER_MS: i64 = 20_000;

/// The loaded file.
#[derive(Debug, Clone)]
pub struct RobotSettings {
    defaults: Defaults,
    shops: HashMap<String, Layer>,
    agents: HashMap<String, Layer>,
}

impl RobotSettings {
    /// `[defaults]`' `resolved_after_min`, in ms (the figures are per shop, but one window
    /// keeps 解决率 comparable across shops).
    pub fn resolved_after_ms(&self) -> i64 {
        self.defaults.resolved_after_ms
    }

    /// The shortest `stale_after_s` of any layer, in ms.
    pub fn min_stale_after_ms(&self) -> i64 {
        self.shops
            .values()
            .chain(self.agents.values())
            .filter_map(|l| l.stale_after_ms)
            .fold(self.defaults.stale_after_ms, i64::min)
    }

    /// The settings for `agent` in `shop`.
    pub fn resolve(&self, shop: &str, agent: &str) -> Settings<'_> {
        let over = [self.agents.get(agent), self.shops.get(shop)];
        macro_rules! pick {
            ($f:ident) => {
                over.iter().flatten().find_map(|l| l.$f.as_ref()).unwrap_or(&self.defaults.$f)
            };
        }
        Settings {
            greeting: pick!(greeting),
            away: *pick!(away),
            away_text: pick!(away_text),
            rescue_after_ms: *pick!(rescue_after_ms),
            rescue_text: pick!(rescue_text),
            suggest: *pick!(suggest),
            max_per_hour: *pick!(max_per_hour),
            transfer_offer: pick!(transfer_offer),
            transfer_keywords: pick!(transfer_keywords),
            stale_after_ms: *pick!(stale_after_ms),
            greeting_per_day: *pick!(greeting_per_day),
            busy_is_away: *pick!(busy_is_away),
            load_answer_above: *pick!(load_answer_above),
            similar_threshold: *pick!(similar_threshold),
            payment_reminder_after_ms: *pick!(payment_reminder_after_ms),
            payment_reminder_text: pick!(payment_reminder_text),
            quiet_hours: *pick!(quiet_hours),
            resolved_after_ms: *pick!(resolved_after_ms),
        }
    }
}

/// Reads `robot.toml` from `dir`, or the embedded default.
pub fn load(dir: Option<&Path>) -> Result<RobotSettings, DataError> {
    let (path, text) = read_or_default(dir, FILE, DEFAULT)?;
    parse(&path, &text)
}

/// Parses and validates the settings; `file` is used in error messages.
pub fn parse(file: &Path, text: &str) -> Result<RobotSettings, DataError> {
    let raw: Raw = parse_toml(file, text)?;
    let d = layer(file, text, raw.defaults)?;
    let line = crate::rules::line_containing(text, "[defaults]");
    let missing = |name: &str| DataError::at(file, line, format!("[defaults] must set `{name}`"));
    let defaults = Defaults {
        greeting: d.greeting.ok_or_else(|| missing("greeting"))?,
        away: d.away.ok_or_else(|| missing("away"))?,
        away_text: d.away_text.ok_or_else(|| missing("away_text"))?,
        rescue_after_ms: d.rescue_after_ms.ok_or_else(|| missing("rescue_after_s"))?,
        rescue_text: d.rescue_text.ok_or_else(|| missing("rescue_text"))?,
        suggest: d.suggest.ok_or_else(|| missing("suggest"))?,
        max_per_hour: d.max_per_hour.ok_or_else(|| missing("max_per_hour"))?,
        transfer_offer: d.transfer_offer.ok_or_else(|| missing("transfer_offer"))?,
        transfer_keywords: d.transfer_keywords.ok_or_else(|| missing("transfer_keywords"))?,
        stale_after_ms: d.stale_after_ms.unwrap_or(DEFAULT_STALE_AFTER_MS),
        greeting_per_day: d.greeting_per_day.unwrap_or(true),
        busy_is_away: d.busy_is_away.unwrap_or(false),
        load_answer_above: d.load_answer_above.unwrap_or(0),
        similar_threshold: d.similar_threshold.unwrap_or(DEFAULT_SIMILAR_THRESHOLD),
        payment_reminder_after_ms: d.payment_reminder_after_ms.unwrap_or(0),
        payment_reminder_text: d.payment_reminder_text.unwrap_or_default(),
        quiet_hours: d.quiet_hours.unwrap_or(None),
        resolved_after_ms: d.resolved_after_ms.unwrap_or(600_000),
    };
    let mut shops = HashMap::new();
    for (k, v) in raw.shops {
        shops.insert(k, layer(file, text, v)?);
    }
    let mut agents = HashMap::new();
    for (k, v) in raw.agents {
        agents.insert(k, layer(file, text, v)?);
    }
    Ok(RobotSettings { defaults, shops, agents })
}

fn layer(file: &Path, text: &str, raw: RawLayer) -> Result<Layer, DataError> {
    let template = |v: Option<Spanned<String>>| -> Result<Option<Template>, DataError> {
        v.map(|s| {
            Template::parse(s.get_ref())
                .map_err(|m| DataError::at(file, Some(line_of(text, s.span().start)), m))
        })
        .transpose()
    };
    let mut keywords = raw.transfer_keywords;
    if let Some(k) = &mut keywords {
        k.retain(|w| !w.trim().is_empty());
    }
    Ok(Layer {
        greeting: template(raw.greeting)?,
        away: raw.away,
        away_text: template(raw.away_text)?,
        rescue_after_ms: raw.rescue_after_s.map(|s| i64::from(s) * 1000),
        rescue_text: template(raw.rescue_text)?,
        suggest: raw.suggest,
        max_per_hour: raw.max_per_hour,
        transfer_offer: template(raw.transfer_offer)?,
        transfer_keywords: keywords,
        stale_after_ms: raw.stale_after_s.map(|s| i64::from(s) * 1000),
        greeting_per_day: raw.greeting_per_day,
        busy_is_away: raw.busy_is_away,
        load_answer_above: raw.load_answer_above,
        similar_threshold: raw
            .similar_threshold
            .map(|t| {
                if (0.0..=1.0).contains(&t) {
                    Ok(t)
                } else {
                    let line = crate::rules::line_containing(text, "similar_threshold");
                    Err(DataError::at(file, line, format!("similar_threshold {t}: expected 0 to 1")))
                }
            })
            .transpose()?,
        payment_reminder_after_ms: raw.payment_reminder_after_s.map(|s| i64::from(s) * 1000),
        payment_reminder_text: template(raw.payment_reminder_text)?,
        quiet_hours: raw
            .quiet_hours
            .map(|q| {
                if q.get_ref().trim().is_empty() {
                    return Ok(None);
                }
                span(q.get_ref()).map(Some).ok_or_else(|| {
                    DataError::at(
                        file,
                        Some(line_of(text, q.span().start)),
                        format!("quiet_hours `{}`: expected HH:MM-HH:MM or \"\"", q.get_ref()),
                    )
                })
            })
            .transpose()?,
        resolved_after_ms: raw.resolved_after_min.map(|m| i64::from(m) * 60_000),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_overrides_shop_overrides_defaults() {
        let text = r#"
[defaults]
greeting = "您好"
away = true
away_text = "稍等"
rescue_after_s = 15
rescue_text = "马上来"
suggest = true
max_per_hour = 6
transfer_offer = ""
transfer_keywords = ["转人工"]

[shops.s1]
rescue_after_s = 30
greeting = ""

[agents.a1]
rescue_after_s = 10
"#;
        let s = parse(Path::new("robot.toml"), text).unwrap();
        let cases = [("s0", "a0", 15_000, false), ("s1", "a0", 30_000, true), ("s1", "a1", 10_000, true)];
        for (shop, agent, rescue, greeting_off) in cases {
            let r = s.resolve(shop, agent);
            assert_eq!(r.rescue_after_ms, rescue, "{shop}/{agent}");
            assert_eq!(r.greeting.is_empty(), greeting_off, "{shop}/{agent}");
            assert_eq!(r.max_per_hour, 6);
        }
    }

    #[test]
    fn errors_name_line() {
        let p = Path::new("replies/robot.toml");
        let e = parse(p, "[defaults]\ngreeting = \"hi\"\n").unwrap_err();
        assert!(e.message.contains("must set `away`"), "{e}");
        let e = parse(p, "[defaults]\ngreeting = \"hi {颜色}\"\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let e = parse(p, "[defaults]\nrescue_after_s = -1\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn shipped_settings_load() {
        let s = load(None).unwrap();
        assert_eq!(s.resolve("毛菇小象", "小美").rescue_after_ms, 15_000);
        assert!(!s.resolve("毛菇小象", "小美").greeting.is_empty());
    }
}

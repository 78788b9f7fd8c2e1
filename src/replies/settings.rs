//! `replies/robot.toml`: when and what the robot says, per shop and overridable per agent.
//!
//! `[defaults]` must set every field; `[shops."name"]` and `[agents."name"]` set only what
//! differs. An agent's value wins over the shop's, the shop's over the defaults.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

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
}

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

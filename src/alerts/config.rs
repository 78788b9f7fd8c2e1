//! `rules/alerts.toml`: alert timing, agent groups and the sinks alerts go to.
//!
//! Two stages: the serde shape [`AlertsFile`] (also usable as the `[alerts]` table of a
//! `kefu.toml`) is compiled once by [`build`] into an [`AlertConfig`]. Webhook URLs and
//! secrets may name environment variables (`url_env`, `secret_env`); they are looked up
//! through a function so tests need no process environment.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::privacy::Secret;
use crate::rules::{DataError, line_of, parse_toml, read_or_default};

use super::format::{FeishuStyle, Vendor};
use super::notice::{Kind, Notice};
use super::pace::Backoff;
use super::plan::Plan;

/// File name inside the rules folder.
pub const FILE: &str = "alerts.toml";
const DEFAULT: &str = include_str!("../../rules/alerts.toml");

/// The file as written. Every field is optional; the defaults are the embedded file's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsFile {
    /// Warning at this fraction of the deadline (0 < f < 1); absent = no warnings.
    pub warning_at: Option<f64>,
    /// Escalation at this multiple of the deadline (> 1); 0 = no escalation; default 3.
    pub escalation_at: Option<f64>,
    /// Send a `resolved` alert when the agent answers after a breach; default false.
    #[serde(default)]
    pub resolved: bool,
    /// Alerts due longer ago than this when submitted are recorded, not sent; default 600.
    pub stale_after_s: Option<u32>,
    /// Group name → its agents, for routing by group.
    #[serde(default)]
    pub agent_groups: BTreeMap<String, Vec<String>>,
    /// The sinks.
    #[serde(default)]
    pub sink: Vec<SinkFile>,
}

/// One `[[sink]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkFile {
    /// Unique name; the outbox records deliveries under it (a renamed sink's undelivered
    /// alerts stay in the outbox under the old name).
    pub name: String,
    /// `terminal`, `log`, `dingtalk`, `wecom`, `feishu`, `slack` or `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Webhook URL (or use `url_env`).
    pub url: Option<Secret>,
    /// Environment variable holding the webhook URL.
    pub url_env: Option<String>,
    /// Signing secret for DingTalk (`SEC…`) or Feishu (or use `secret_env`).
    pub secret: Option<Secret>,
    /// Environment variable holding the signing secret.
    pub secret_env: Option<String>,
    /// Feishu message type: `text`, `post` (default) or `interactive`.
    pub style: Option<String>,
    /// Only these shops (empty = all).
    #[serde(default)]
    pub shops: Vec<String>,
    /// Only agents of these groups (empty = all).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Only these kinds (absent = all kinds).
    pub kinds: Option<Vec<Kind>>,
    /// Messages a minute once the burst is spent (default per vendor).
    pub per_minute: Option<u32>,
    /// Messages that may go at once (default per vendor).
    pub burst: Option<u32>,
    /// Per-request timeout in milliseconds (default 5000).
    pub timeout_ms: Option<u32>,
    /// Requests in flight at once (default 4; 1 for terminal and log).
    pub concurrency: Option<u32>,
    /// Tries before an alert is marked failed (default 6).
    pub max_attempts: Option<u32>,
    /// First retry delay in milliseconds, doubling (default 1000).
    pub retry_base_ms: Option<u32>,
    /// Longest retry delay in milliseconds (default 60000).
    pub retry_max_ms: Option<u32>,
}

/// The compiled alert configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// When alerts fall due and when they are stale.
    pub plan: Plan,
    /// Where they go.
    pub sinks: Vec<Sink>,
    /// Agent → group.
    pub agent_groups: HashMap<String, String>,
}

/// One compiled sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    /// Unique name (outbox key).
    pub name: String,
    /// What body it gets.
    pub vendor: Vendor,
    /// The URL, resolved from the environment when given as `url_env`; `None` for terminal and log.
    pub url: Option<Secret>,
    /// The signing secret, resolved.
    pub secret: Option<Secret>,
    /// Which notices it takes.
    pub route: Route,
    /// `(per_minute, burst)`; `None` = unlimited (terminal).
    pub rate: Option<(u32, u32)>,
    /// Per-request timeout.
    pub timeout_ms: u32,
    /// Requests in flight at once: a slow webhook still delivers in parallel, and what
    /// is due while every slot is busy is folded into a digest when one frees.
    pub concurrency: u32,
    /// Retry schedule.
    pub retry: Backoff,
}

/// Which notices a sink takes: all three filters must pass; an empty filter passes all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    /// Shops.
    pub shops: Vec<String>,
    /// Agent groups.
    pub groups: Vec<String>,
    /// Kinds.
    pub kinds: Vec<Kind>,
}

impl Route {
    /// Whether the notice goes to this sink.
    pub fn matches(&self, n: &Notice) -> bool {
        let shop = self.shops.is_empty() || self.shops.contains(&n.shop);
        let group = self.groups.is_empty() || n.agent_group.as_ref().is_some_and(|g| self.groups.contains(g));
        let kind = self.kinds.is_empty() || self.kinds.contains(&n.kind);
        shop && group && kind
    }
}

impl AlertConfig {
    /// The sinks a notice goes to.
    pub fn route<'a>(&'a self, n: &'a Notice) -> impl Iterator<Item = &'a Sink> + 'a {
        self.sinks.iter().filter(move |s| s.route.matches(n))
    }

    /// The group of an agent, from `[agent_groups]`.
    pub fn group_of(&self, agent: &str) -> Option<&str> {
        self.agent_groups.get(agent).map(String::as_str)
    }

    /// A configuration with only a terminal sink and the default plan.
    pub fn terminal_only() -> Self {
        let mut sink = sink_defaults("terminal", Vendor::Terminal);
        sink.rate = None;
        Self { plan: Plan::default(), sinks: vec![sink], agent_groups: HashMap::new() }
    }
}

impl Default for AlertConfig {
    fn default() -> Self {
        parse(Path::new("<embedded>/alerts.toml"), DEFAULT, &|_| None)
            .unwrap_or_else(|_| Self::terminal_only())
    }
}

/// Reads `alerts.toml` from `dir`, or the embedded default; env vars from the process.
pub fn load(dir: Option<&Path>) -> Result<AlertConfig, DataError> {
    let (path, text) = read_or_default(dir, FILE, DEFAULT)?;
    parse(&path, &text, &|name| std::env::var(name).ok())
}

/// Parses and validates the file text; `env` resolves `url_env` / `secret_env`.
pub fn parse(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AlertConfig, DataError> {
    let raw: AlertsFile = parse_toml(file, text)?;
    build(file, text, raw, env)
}

/// Compiles the file's shape into the runtime configuration; `text` locates errors.
pub fn build(
    file: &Path,
    text: &str,
    raw: AlertsFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AlertConfig, DataError> {
    let err =
        |needle: &str, msg: String| DataError::at(file, crate::rules::line_containing(text, needle), msg);
    let mut plan = Plan { resolved: raw.resolved, ..Plan::default() };
    if let Some(w) = raw.warning_at {
        if !(w > 0.0 && w < 1.0) {
            return Err(err("warning_at", format!("warning_at must be a fraction between 0 and 1, got {w}")));
        }
        plan.warning_permille = Some(permille(w));
    }
    if let Some(e) = raw.escalation_at {
        plan.escalation_permille = match e {
            0.0 => None,
            e if e > 1.0 && e <= 1000.0 => Some(permille(e)),
            _ => {
                return Err(err(
                    "escalation_at",
                    format!(
                        "escalation_at must be a multiple of the deadline above 1 (or 0 for none), got {e}"
                    ),
                ));
            }
        };
    }
    if let Some(s) = raw.stale_after_s {
        plan.stale_after_ms = i64::from(s) * 1000;
    }

    let mut agent_groups = HashMap::new();
    for (group, agents) in &raw.agent_groups {
        for agent in agents {
            if let Some(prev) = agent_groups.insert(agent.clone(), group.clone()) {
                return Err(err(
                    agent,
                    format!("agent {agent:?} is in two agent_groups ({prev:?} and {group:?})"),
                ));
            }
        }
    }

    let sink_lines = sink_lines(text);
    let mut names = HashSet::new();
    let mut sinks = Vec::new();
    for (i, s) in raw.sink.into_iter().enumerate() {
        let line = sink_lines.get(i).copied();
        let sink =
            build_sink(s, env).map_err(|m| DataError::at(file, line, format!("sink {}: {m}", i + 1)))?;
        if !names.insert(sink.name.clone()) {
            return Err(DataError::at(file, line, format!("sink name {:?} is used twice", sink.name)));
        }
        for g in &sink.route.groups {
            if !raw.agent_groups.contains_key(g) {
                return Err(DataError::at(
                    file,
                    line,
                    format!("sink {:?} routes group {g:?}, which [agent_groups] does not define", sink.name),
                ));
            }
        }
        sinks.push(sink);
    }
    Ok(AlertConfig { plan, sinks, agent_groups })
}

fn permille(x: f64) -> u32 {
    (x * 1000.0).round() as u32
}

/// The line of each `[[sink]]` (or `[[alerts.sink]]` in a `kefu.toml`) header, in order.
fn sink_lines(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut offset = 0;
    for l in text.split_inclusive('\n') {
        let header = l.trim();
        if header.starts_with("[[sink]]") || header.starts_with("[[alerts.sink]]") {
            out.push(line_of(text, offset));
        }
        offset += l.len();
    }
    out
}

/// Requests a webhook sink has in flight at once by default.
pub const DEFAULT_CONCURRENCY: u32 = 4;
/// The most `concurrency` may be: more would only trip a vendor's rate limit sooner.
pub const MAX_CONCURRENCY: u32 = 32;

fn sink_defaults(name: &str, vendor: Vendor) -> Sink {
    // Defaults keep each vendor under its documented limit in any one-minute window
    // (burst + per_minute): DingTalk and WeCom 20/min, Feishu 100/min.
    let rate = match vendor {
        Vendor::Terminal | Vendor::Log => None,
        Vendor::DingTalk | Vendor::WeCom => Some((15, 5)),
        Vendor::Feishu(_) => Some((80, 5)),
        Vendor::Slack | Vendor::Webhook => Some((60, 10)),
    };
    Sink {
        name: name.to_string(),
        vendor,
        url: None,
        secret: None,
        route: Route::default(),
        rate,
        timeout_ms: 5_000,
        concurrency: if matches!(vendor, Vendor::Terminal | Vendor::Log) { 1 } else { DEFAULT_CONCURRENCY },
        retry: Backoff::default(),
    }
}

fn build_sink(s: SinkFile, env: &dyn Fn(&str) -> Option<String>) -> Result<Sink, String> {
    if s.name.trim().is_empty() {
        return Err("name must not be empty".into());
    }
    let style = match s.style.as_deref() {
        None | Some("post") => FeishuStyle::Post,
        Some("text") => FeishuStyle::Text,
        Some("interactive") => FeishuStyle::Interactive,
        Some(other) => return Err(format!("style {other:?}: expected text, post or interactive")),
    };
    let vendor = match s.kind.as_str() {
        "terminal" => Vendor::Terminal,
        "log" => Vendor::Log,
        "dingtalk" => Vendor::DingTalk,
        "wecom" => Vendor::WeCom,
        "feishu" => Vendor::Feishu(style),
        "slack" => Vendor::Slack,
        "webhook" => Vendor::Webhook,
        other => {
            return Err(format!(
                "type {other:?}: expected terminal, dingtalk, wecom, feishu, slack or webhook"
            ));
        }
    };
    if s.style.is_some() && !matches!(vendor, Vendor::Feishu(_)) {
        return Err("style applies to feishu sinks only".into());
    }
    let mut sink = sink_defaults(&s.name, vendor);
    sink.url = resolve("url", s.url, s.url_env, env)?;
    sink.secret = resolve("secret", s.secret, s.secret_env, env)?;
    match (vendor, &sink.url) {
        (Vendor::Terminal | Vendor::Log, Some(_)) => return Err(format!("a {} sink takes no url", s.kind)),
        (Vendor::Terminal | Vendor::Log, None) => {}
        (_, None) => return Err(format!("a {} sink needs url or url_env", s.kind)),
        (_, Some(u)) => match url::Url::parse(u.expose()) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => {}
            Ok(p) => return Err(format!("url scheme {:?}: expected http or https", p.scheme())),
            Err(e) => return Err(format!("url is not a valid URL: {e}")),
        },
    }
    if sink.secret.is_some() && !matches!(vendor, Vendor::DingTalk | Vendor::Feishu(_)) {
        return Err("secret applies to dingtalk and feishu sinks only".into());
    }
    sink.route = Route { shops: s.shops, groups: s.groups, kinds: s.kinds.unwrap_or_default() };
    if let Some(p) = s.per_minute {
        if p == 0 {
            return Err("per_minute must be above 0".into());
        }
        sink.rate = Some((p, sink.rate.map_or(p, |r| r.1)));
    }
    if let Some(b) = s.burst {
        if b == 0 {
            return Err("burst must be above 0".into());
        }
        sink.rate = Some((sink.rate.map_or(60, |r| r.0), b));
    }
    if let Some(t) = s.timeout_ms {
        if t == 0 {
            return Err("timeout_ms must be above 0".into());
        }
        sink.timeout_ms = t;
    }
    if let Some(c) = s.concurrency {
        if !(1..=MAX_CONCURRENCY).contains(&c) {
            return Err(format!("concurrency {c}: expected 1 to {MAX_CONCURRENCY}"));
        }
        sink.concurrency = c;
    }
    if let Some(m) = s.max_attempts {
        if m == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        sink.retry.max_attempts = m;
    }
    if let Some(b) = s.retry_base_ms {
        sink.retry.base_ms = i64::from(b);
    }
    if let Some(m) = s.retry_max_ms {
        sink.retry.max_ms = i64::from(m);
    }
    if sink.retry.max_ms < sink.retry.base_ms {
        return Err("retry_max_ms must not be below retry_base_ms".into());
    }
    Ok(sink)
}

/// A value given inline or through an environment variable, never both.
fn resolve(
    what: &str,
    inline: Option<Secret>,
    var: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, String> {
    match (inline, var) {
        (Some(_), Some(_)) => Err(format!("give {what} or {what}_env, not both")),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(name)) => match env(&name) {
            Some(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim()))),
            _ => Err(format!("{what}_env: environment variable {name} is not set")),
        },
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<AlertConfig, DataError> {
        let env = |name: &str| {
            (name == "KEFU_DINGTALK_URL")
                .then(|| "https://oapi.dingtalk.com/robot/send?access_token=x".to_string())
        };
        parse(Path::new("rules/alerts.toml"), text, &env)
    }

    #[test]
    fn embedded_default_is_terminal_only() {
        let c = p(DEFAULT).unwrap();
        assert_eq!(c.sinks.len(), 1);
        assert_eq!(c.sinks[0].vendor, Vendor::Terminal);
        assert_eq!(c.plan, Plan::default());
        assert_eq!(c, AlertConfig::default());
    }

    #[test]
    fn routes_by_shop_group_and_kind() {
        let c = p(r#"
warning_at = 0.75
escalation_at = 3
resolved = true
[agent_groups]
"售前" = ["小王", "小李"]
[[sink]]
name = "team"
type = "dingtalk"
url_env = "KEFU_DINGTALK_URL"
secret = "SEC1"
groups = ["售前"]
kinds = ["warning", "breach", "resolved"]
[[sink]]
name = "boss"
type = "feishu"
style = "interactive"
url = "https://open.feishu.cn/open-apis/bot/v2/hook/x"
shops = ["旗舰店"]
kinds = ["escalation"]
"#)
        .unwrap();
        assert_eq!(c.plan.warning_permille, Some(750));
        assert_eq!(c.plan.escalation_permille, Some(3000));
        assert_eq!(
            c.sinks[0].url.as_ref().map(Secret::expose),
            Some("https://oapi.dingtalk.com/robot/send?access_token=x")
        );
        assert_eq!(c.sinks[0].rate, Some((15, 5)));
        assert_eq!(c.group_of("小李"), Some("售前"));
        let notice = |kind, shop: &str, group: Option<&str>| Notice {
            kind,
            shop: shop.into(),
            agent: "a".into(),
            agent_group: group.map(String::from),
            conversation: "c".into(),
            customer: "b".into(),
            wait_start: 0,
            due_at: 0,
            waited_ms: 0,
            deadline_ms: 0,
            load: 0,
            preview: String::new(),
            detail: None,
        };
        let cases = [
            (Kind::Breach, "旗舰店", Some("售前"), vec!["team"]),
            (Kind::Breach, "旗舰店", None, vec![]),
            (Kind::Escalation, "旗舰店", Some("售前"), vec!["boss"]),
            (Kind::Escalation, "二店", Some("售前"), vec![]),
            (Kind::Guard, "旗舰店", Some("售前"), vec![]),
        ];
        for (kind, shop, group, want) in cases {
            let n = notice(kind, shop, group);
            let got: Vec<&str> = c.route(&n).map(|s| s.name.as_str()).collect();
            assert_eq!(got, want, "{kind} {shop} {group:?}");
        }
    }

    /// The examples in docs/alerts.md are valid, both as `rules/alerts.toml` and as a
    /// `kefu.toml` `[alerts]` table.
    #[test]
    fn documented_examples_parse() {
        #[derive(Deserialize)]
        struct RunFile {
            alerts: AlertsFile,
        }
        let doc = include_str!("../../docs/alerts.md");
        let blocks: Vec<&str> =
            doc.split("```toml\n").skip(1).filter_map(|b| b.split("```").next()).collect();
        assert_eq!(blocks.len(), 2);
        let env = |_: &str| Some("https://example.com/hook".to_string());
        let c = parse(Path::new("docs/alerts.md"), blocks[0], &env).unwrap();
        assert_eq!(c.sinks.len(), 5);
        assert_eq!(c.plan.warning_permille, Some(750));
        let run: RunFile = toml::from_str(blocks[1]).unwrap();
        let c = build(Path::new("kefu.toml"), blocks[1], run.alerts, &env).unwrap();
        assert_eq!(c.sinks.len(), 2);
        assert_eq!(c.sinks[1].rate, Some((15, 5)));
        assert_eq!(c.group_of("小王"), Some("售前"));
    }

    #[test]
    fn errors_name_line_and_problem() {
        let cases = [
            ("warning_at = 1.5\n", 1, "between 0 and 1"),
            ("escalation_at = 0.5\n", 1, "above 1"),
            ("[[sink]]\nname = \"x\"\ntype = \"pager\"\n", 1, "expected terminal"),
            ("[[sink]]\nname = \"x\"\ntype = \"log\"\nurl = \"http://h/\"\n", 1, "a log sink takes no url"),
            ("\n[[sink]]\nname = \"x\"\ntype = \"dingtalk\"\n", 2, "needs url or url_env"),
            ("[[sink]]\nname = \"x\"\ntype = \"wecom\"\nurl_env = \"NOPE\"\n", 1, "NOPE is not set"),
            ("[[sink]]\nname = \"x\"\ntype = \"wecom\"\nurl = \"ftp://h/\"\n", 1, "expected http or https"),
            (
                "[[sink]]\nname = \"x\"\ntype = \"wecom\"\nurl = \"http://h/\"\nsecret = \"s\"\n",
                1,
                "dingtalk and feishu",
            ),
            (
                "[[sink]]\nname = \"x\"\ntype = \"terminal\"\n[[sink]]\nname = \"x\"\ntype = \"terminal\"\n",
                4,
                "used twice",
            ),
            (
                "[[sink]]\nname = \"x\"\ntype = \"terminal\"\nkinds = [\"breech\"]\n",
                4,
                "unknown variant `breech`",
            ),
            ("[[sink]]\nname = \"x\"\ntype = \"terminal\"\ngroups = [\"售后\"]\n", 1, "does not define"),
            ("[[sink]]\nname = \"x\"\ntype = \"terminal\"\ncolour = 1\n", 4, "unknown field `colour`"),
            (
                "[[sink]]\nname = \"x\"\ntype = \"slack\"\nurl = \"http://h/\"\nstyle = \"post\"\n",
                1,
                "feishu sinks only",
            ),
            (
                "[[sink]]\nname = \"x\"\ntype = \"slack\"\nurl = \"http://h/\"\nconcurrency = 0\n",
                1,
                "expected 1 to 32",
            ),
        ];
        for (text, line, msg) in cases {
            let e = p(text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text}: {e}");
            assert!(e.message.contains(msg), "{text}: {e}");
        }
    }
}

//! `kefu.toml`, the configuration of `kefu run`: platform, database, rule folders, alert
//! sinks, log level. Secrets may come from environment variables (`token_env`); flags
//! `--url`, `--token` and `--db` override the file, so `kefu run --url … --db …` needs none.
//!
//! Two stages: the serde shape [`ConfigFile`] (`deny_unknown_fields`) is compiled by
//! [`build`] into a [`RunConfig`]. [`load`] reads, [`parse`] parses, so tests pass strings.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::alerts::AlertConfig;
use crate::alerts::config::AlertsFile;
use crate::privacy::Secret;
use crate::rules::{DataError, line_containing, parse_toml};

/// The file as written; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Log filter (`error`, `warn`, `info`, `debug`, or a `tracing` filter); default `info`.
    pub log: Option<String>,
    /// SQLite file; default `kefu.db`.
    pub db: Option<PathBuf>,
    /// Rules folder; default `./rules` when present, else the embedded defaults.
    pub rules: Option<PathBuf>,
    /// Replies folder; default `./replies` when present, else the embedded defaults.
    pub replies: Option<PathBuf>,
    /// The chat platform.
    pub platform: Option<PlatformFile>,
    /// Alert timing and sinks, as in `rules/alerts.toml`; absent = that file (or its default).
    pub alerts: Option<AlertsFile>,
    /// The web console.
    pub console: Option<ConsoleFile>,
    /// How often the engine's state is stored for fast restarts.
    pub snapshots: Option<SnapshotsFile>,
}

/// `[snapshots]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsFile {
    /// Seconds between snapshots (default 60).
    pub every_s: Option<i64>,
    /// New events between snapshots (default 200,000), whichever comes first.
    pub every_events: Option<i64>,
}

/// `[console]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleFile {
    /// Address to serve the console on, e.g. `127.0.0.1:8080` (the default), or `off`.
    pub http: Option<String>,
    /// Mark cookies `Secure`: set it when browsers reach the console over HTTPS.
    pub secure_cookies: Option<bool>,
}

/// Where `kefu run` serves the console unless told otherwise: loopback only.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";

/// `[platform]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformFile {
    /// `ws://` or `wss://` URL.
    pub url: Option<String>,
    /// The bearer token itself (prefer `token_env`).
    pub token: Option<Secret>,
    /// Name of the environment variable holding the token, e.g. `KEFU_TOKEN`.
    pub token_env: Option<String>,
}

/// Values given on the command line, which win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--url`.
    pub url: Option<String>,
    /// `--token`.
    pub token: Option<Secret>,
    /// `--db`.
    pub db: Option<PathBuf>,
    /// `--rules`.
    pub rules: Option<PathBuf>,
    /// `--replies`.
    pub replies: Option<PathBuf>,
}

/// The compiled configuration of `kefu run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Platform URL.
    pub url: String,
    /// Bearer token, if the platform wants one.
    pub token: Option<Secret>,
    /// SQLite file.
    pub db: PathBuf,
    /// Rules folder (none = embedded defaults).
    pub rules: Option<PathBuf>,
    /// Replies folder (none = embedded defaults).
    pub replies: Option<PathBuf>,
    /// Log filter.
    pub log: String,
    /// Alerts; `None` = read `alerts.toml` from the rules folder.
    pub alerts: Option<AlertConfig>,
    /// The console's address (`None`: `http = "off"`, no console).
    pub console_http: Option<std::net::SocketAddr>,
    /// Console cookies carry `Secure`.
    pub secure_cookies: bool,
    /// When the engine's state is stored (`[snapshots]`).
    pub snapshots: crate::live::SnapshotPolicy,
}

/// Reads `path` when given (a missing file is an error), else starts from an empty file.
pub fn load(
    path: Option<&Path>,
    overrides: Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RunConfig, DataError> {
    let Some(path) = path else {
        return build(Path::new("<no config file>"), "", ConfigFile::default(), overrides, env);
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| DataError::at(path, None, format!("cannot read: {e}")))?;
    parse(path, &text, overrides, env)
}

/// Parses and compiles the file text; `file` names it in errors.
pub fn parse(
    file: &Path,
    text: &str,
    overrides: Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RunConfig, DataError> {
    let raw: ConfigFile = parse_toml(file, text)?;
    build(file, text, raw, overrides, env)
}

/// Compiles the file's shape with the overrides; `text` locates errors.
pub fn build(
    file: &Path,
    text: &str,
    raw: ConfigFile,
    overrides: Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RunConfig, DataError> {
    let platform = raw.platform.unwrap_or_default();
    let url = overrides.url.or(platform.url).ok_or_else(|| {
        DataError::at(file, None, "no platform url: set `url` under [platform] or pass --url ws://…")
    })?;
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(DataError::at(
            file,
            line_containing(text, "url"),
            format!("platform url `{url}` must start with ws:// or wss://"),
        ));
    }
    let token = match (overrides.token, platform.token, platform.token_env) {
        (Some(t), _, _) | (None, Some(t), _) => Some(t),
        (None, None, Some(var)) => Some(env(&var).map(Secret::from).ok_or_else(|| {
            DataError::at(
                file,
                line_containing(text, "token_env"),
                format!("token_env = \"{var}\" but the environment variable {var} is not set"),
            )
        })?),
        (None, None, None) => None,
    };
    let alerts = raw.alerts.map(|a| crate::alerts::config::build(file, text, a, env)).transpose()?;
    let console = raw.console.unwrap_or_default();
    let console_http = match console.http.as_deref().unwrap_or(DEFAULT_HTTP) {
        "off" => None,
        addr => Some(addr.parse().map_err(|_| {
            DataError::at(
                file,
                line_containing(text, "http"),
                format!("console http `{addr}`: expected an address such as 127.0.0.1:8080, or \"off\""),
            )
        })?),
    };
    let mut snapshots = crate::live::SnapshotPolicy::default();
    if let Some(sf) = raw.snapshots {
        let positive = |key: &str, v: Option<i64>| match v {
            Some(n) if n < 1 => Err(DataError::at(
                file,
                line_containing(text, key),
                format!("snapshots {key} = {n}: expected a whole number of at least 1"),
            )),
            _ => Ok(v),
        };
        if let Some(s) = positive("every_s", sf.every_s)? {
            snapshots.every_ms = s.saturating_mul(1000);
        }
        if let Some(n) = positive("every_events", sf.every_events)? {
            snapshots.every_events = n as u64;
        }
    }
    Ok(RunConfig {
        snapshots,
        url,
        token,
        db: overrides.db.or(raw.db).unwrap_or_else(|| PathBuf::from("kefu.db")),
        rules: overrides.rules.or(raw.rules),
        replies: overrides.replies.or(raw.replies),
        log: raw.log.unwrap_or_else(|| "info".into()),
        alerts,
        console_http,
        secure_cookies: console.secure_cookies.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEFU_TOKEN").then(|| "from-env".to_string())
    }

    fn parse_str(text: &str, overrides: Overrides) -> Result<RunConfig, DataError> {
        parse(Path::new("kefu.toml"), text, overrides, &env)
    }

    #[test]
    fn the_shipped_example_parses() {
        let c = parse_str(include_str!("../kefu.toml.example"), Overrides::default()).unwrap();
        assert_eq!(c.url, "wss://platform.example.com/kefu/v1");
        assert_eq!(c.token.as_ref().map(Secret::expose), Some("from-env"));
        assert!(c.alerts.is_some());
    }

    /// Secrets never print: a config shown with `{:?}` holds no token, webhook URL or
    /// signing secret.
    #[test]
    fn a_config_printed_for_debugging_shows_no_secret() {
        let file = "[platform]\nurl = \"ws://10.0.0.1:1\"\ntoken = \"tok-123\"\n\
                    [[alerts.sink]]\nname = \"d\"\ntype = \"dingtalk\"\n\
                    url = \"https://oapi.dingtalk.com/robot/send?access_token=at-456\"\nsecret = \"SEC789\"\n";
        let overrides = Overrides { token: Some(Secret::new("flag-000")), ..Overrides::default() };
        let shown = format!("{:?} {overrides:?}", parse_str(file, overrides.clone()).unwrap());
        for secret in ["tok-123", "at-456", "SEC789", "flag-000"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let c = parse_str(file, Overrides::default()).unwrap();
        assert_eq!(c.token.as_ref().map(Secret::expose), Some("tok-123"));
    }

    /// Issue 15: `kefu run --rules DIR --replies DIR` win over the file's folders.
    #[test]
    fn rules_and_replies_flags_override_the_file() {
        let file = "rules = \"r1\"\nreplies = \"p1\"\n[platform]\nurl = \"ws://10.0.0.1:1\"\n";
        let c = parse_str(file, Overrides::default()).unwrap();
        assert_eq!(
            (c.rules.as_deref(), c.replies.as_deref()),
            (Some(Path::new("r1")), Some(Path::new("p1")))
        );
        let o = Overrides { rules: Some("r2".into()), replies: Some("p2".into()), ..Overrides::default() };
        let c = parse_str(file, o).unwrap();
        assert_eq!(
            (c.rules.as_deref(), c.replies.as_deref()),
            (Some(Path::new("r2")), Some(Path::new("p2")))
        );
    }

    #[test]
    fn flags_override_the_file_and_work_without_one() {
        let file = "db = \"a.db\"\n[platform]\nurl = \"ws://10.0.0.1:1\"\ntoken = \"t\"\n";
        let o = Overrides {
            url: Some("ws://127.0.0.1:9000".into()),
            token: Some(Secret::new("flag")),
            db: Some("b.db".into()),
            ..Overrides::default()
        };
        let c = parse_str(file, o.clone()).unwrap();
        assert_eq!(c.snapshots, crate::live::SnapshotPolicy::default());
        let with = format!("{file}[snapshots]\nevery_s = 5\nevery_events = 1000\n");
        let p = parse_str(&with, Overrides::default()).unwrap().snapshots;
        assert_eq!((p.every_ms, p.every_events), (5_000, 1_000));
        assert_eq!(
            (c.url.as_str(), c.token.as_ref().map(Secret::expose), c.db.as_path()),
            ("ws://127.0.0.1:9000", Some("flag"), Path::new("b.db"))
        );
        let c = load(None, o, &env).unwrap();
        assert_eq!(
            (c.url.as_str(), c.log.as_str(), c.alerts.is_none()),
            ("ws://127.0.0.1:9000", "info", true)
        );
    }

    #[test]
    fn errors_name_the_file_line_and_what_is_wrong() {
        let cases = [
            ("[platform]\nurl = \"ws://x\"\nsecret = 1\n", Some(3), "unknown field `secret`"),
            ("log = \"info\"\n", None, "no platform url"),
            ("[platform]\nurl = \"http://x\"\n", Some(2), "must start with ws://"),
            ("[platform]\nurl = \"ws://x\"\ntoken_env = \"NOPE\"\n", Some(3), "NOPE is not set"),
            ("[platform]\nurl = \"ws://x\"\n[alerts]\nwarning_at = 2.0\n", Some(4), "warning_at"),
            ("[platform]\nurl = \"ws://x\"\n[console]\nhttp = \"localhost\"\n", Some(4), "console http"),
            ("[platform]\nurl = \"ws://x\"\n[snapshots]\nevery_events = 0\n", Some(4), "every_events = 0"),
            ("[platform]\nurl = \"ws://x\"\n[snapshots]\nevery_s = -5\n", Some(4), "every_s = -5"),
        ];
        for (text, line, want) in cases {
            let e = parse_str(text, Overrides::default()).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }
}

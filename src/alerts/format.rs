//! Exact request bodies for each sink, and the DingTalk / Feishu signatures: pure.
//!
//! Every renderer takes a [`Message`] (one notice, or a digest of several) and the time to
//! sign with; nothing here reads the clock. Buyers' ids and messages are masked here, so a
//! body can never carry a raw id.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::time::{Millis, display_shanghai};

use super::notice::{Notice, mask_text};

/// Most notices listed one by one in a digest; the rest are counted.
pub const DIGEST_LINES: usize = 20;

/// Where a sink delivers, and so which body it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// A line on standard output.
    Terminal,
    /// A structured `tracing` event (level WARN, target `kefu::alerts`), for log files.
    Log,
    /// DingTalk (钉钉) custom group robot, markdown message.
    DingTalk,
    /// WeCom (企业微信) group robot, markdown message.
    WeCom,
    /// Feishu / Lark (飞书) custom bot.
    Feishu(FeishuStyle),
    /// Slack-compatible incoming webhook (`{"text": …}`; Mattermost, Rocket.Chat …).
    Slack,
    /// Any HTTP endpoint: the masked notice as JSON.
    Webhook,
}

/// Which Feishu message type to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeishuStyle {
    /// `msg_type: text`, plain lines.
    Text,
    /// `msg_type: post`, rich text with a title.
    Post,
    /// `msg_type: interactive`, a card with a header and a markdown body.
    Interactive,
}

/// What one delivery carries.
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// A single alert.
    One(&'a Notice),
    /// Several alerts merged because the sink's rate limit was reached.
    Digest(&'a [Notice]),
}

/// A rendered HTTP request: the URL to POST to (with any signature) and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Full URL, signature parameters included.
    pub url: String,
    /// The JSON body.
    pub body: String,
}

/// Renders the request a sink sends. `secret` signs DingTalk and Feishu requests;
/// `now` is the signing time (UTC ms). Terminal and log sinks have no request: use [`terminal_line`].
pub fn request(vendor: Vendor, url: &str, secret: Option<&str>, msg: Message<'_>, now: Millis) -> Request {
    let body = match vendor {
        Vendor::DingTalk => dingtalk_body(msg),
        Vendor::WeCom => wecom_body(msg),
        Vendor::Feishu(style) => feishu_body(style, msg, secret.map(|s| (s, now.div_euclid(1000)))),
        Vendor::Slack => slack_body(msg),
        Vendor::Webhook | Vendor::Terminal | Vendor::Log => webhook_body(msg),
    };
    let url = match (vendor, secret) {
        (Vendor::DingTalk, Some(secret)) => dingtalk_signed_url(url, secret, now),
        _ => url.to_string(),
    };
    Request { url, body }
}

/// The message title: kind, agent; or the digest's count.
pub fn title(msg: Message<'_>) -> String {
    match msg {
        Message::One(n) => format!("{} · {}", n.kind.label(), n.agent),
        Message::Digest(ns) => format!("告警汇总 · {} 条", ns.len()),
    }
}

/// Markdown body shared by DingTalk, WeCom and Feishu cards.
pub fn markdown(msg: Message<'_>) -> String {
    let mut out = format!("### {}\n", title(msg));
    for line in lines(msg) {
        out.push_str("- ");
        out.push_str(&line);
        out.push('\n');
    }
    out.pop();
    out
}

/// Plain text: the title, then one line per fact.
pub fn plain(msg: Message<'_>) -> String {
    let mut out = title(msg);
    for line in lines(msg) {
        out.push('\n');
        out.push_str(&line);
    }
    out
}

/// The facts of a message, one per line, buyer masked.
fn lines(msg: Message<'_>) -> Vec<String> {
    match msg {
        Message::One(n) => {
            let mut v = vec![format!("店铺: {}", n.shop)];
            match &n.agent_group {
                Some(g) => v.push(format!("客服: {} ({g})", n.agent)),
                None => v.push(format!("客服: {}", n.agent)),
            }
            v.push(format!("买家: {}", n.masked_customer()));
            if n.kind.is_wait() {
                v.push(format!(
                    "已等待: {} (时限 {}, 接待 {} 人)",
                    duration(n.waited_ms),
                    duration(n.deadline_ms),
                    n.load
                ));
            }
            if let Some(d) = &n.detail {
                v.push(format!("详情: {}", mask_text(d)));
            }
            if !n.preview.is_empty() {
                v.push(format!("买家最后消息: {}", n.masked_preview()));
            }
            v.push(format!("时间: {} (北京时间)", display_shanghai(n.due_at)));
            v
        }
        Message::Digest(ns) => {
            let mut v: Vec<String> = ns.iter().take(DIGEST_LINES).map(digest_line).collect();
            if ns.len() > DIGEST_LINES {
                v.push(format!("…… 另有 {} 条", ns.len() - DIGEST_LINES));
            }
            let (first, last) = (ns.iter().map(|n| n.due_at).min(), ns.iter().map(|n| n.due_at).max());
            if let (Some(a), Some(b)) = (first, last) {
                v.push(format!("时间: {} – {} (北京时间)", display_shanghai(a), display_shanghai(b)));
            }
            v
        }
    }
}

fn digest_line(n: &Notice) -> String {
    if n.kind.is_wait() {
        format!(
            "{} · {} · 买家 {} · 已等待 {} (时限 {})",
            n.kind.label(),
            n.agent,
            n.masked_customer(),
            duration(n.waited_ms),
            duration(n.deadline_ms)
        )
    } else {
        let detail = n.detail.as_deref().map(mask_text).unwrap_or_default();
        format!("{} · {} · 买家 {} · {detail}", n.kind.label(), n.agent, n.masked_customer())
    }
}

/// `25 秒`, `1 分 05 秒`, `2 小时 03 分`: how long, for people.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} 秒"),
        60..3600 => format!("{} 分 {:02} 秒", s / 60, s % 60),
        _ => format!("{} 小时 {:02} 分", s / 3600, s % 3600 / 60),
    }
}

/// One line for the terminal or a log.
pub fn terminal_line(msg: Message<'_>) -> String {
    match msg {
        Message::One(n) => {
            let mut line = format!(
                "{} {} [{}] {} 客服 {} 买家 {}",
                display_shanghai(n.due_at),
                n.kind.label(),
                n.kind,
                n.shop,
                n.agent,
                n.masked_customer()
            );
            if n.kind.is_wait() {
                line.push_str(&format!(
                    " 已等待 {} / 时限 {} 接待 {}",
                    duration(n.waited_ms),
                    duration(n.deadline_ms),
                    n.load
                ));
            }
            if let Some(d) = &n.detail {
                line.push_str(&format!(" {}", mask_text(d)));
            }
            if !n.preview.is_empty() {
                line.push_str(&format!(" “{}”", n.masked_preview()));
            }
            line
        }
        Message::Digest(ns) => {
            let mut line = title(msg);
            for n in ns.iter().take(DIGEST_LINES) {
                line.push_str(" | ");
                line.push_str(&digest_line(n));
            }
            line
        }
    }
}

#[derive(Serialize)]
struct DingTalk<'a> {
    msgtype: &'static str,
    markdown: DingTalkMarkdown<'a>,
}

#[derive(Serialize)]
struct DingTalkMarkdown<'a> {
    title: &'a str,
    text: &'a str,
}

/// `{"msgtype":"markdown","markdown":{"title":…,"text":…}}`.
pub fn dingtalk_body(msg: Message<'_>) -> String {
    let (title, text) = (title(msg), markdown(msg));
    to_json(&DingTalk { msgtype: "markdown", markdown: DingTalkMarkdown { title: &title, text: &text } })
}

/// DingTalk's signature: HMAC-SHA256 keyed by the secret over `"{timestamp_ms}\n{secret}"`,
/// base64 (not yet URL-encoded).
pub fn dingtalk_sign(secret: &str, timestamp_ms: Millis) -> String {
    hmac_base64(secret.as_bytes(), format!("{timestamp_ms}\n{secret}").as_bytes())
}

/// The robot URL with `&timestamp=…&sign=…` appended, the signature URL-encoded.
pub fn dingtalk_signed_url(url: &str, secret: &str, timestamp_ms: Millis) -> String {
    let sign: String =
        url::form_urlencoded::byte_serialize(dingtalk_sign(secret, timestamp_ms).as_bytes()).collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}timestamp={timestamp_ms}&sign={sign}")
}

#[derive(Serialize)]
struct WeCom<'a> {
    msgtype: &'static str,
    markdown: WeComMarkdown<'a>,
}

#[derive(Serialize)]
struct WeComMarkdown<'a> {
    content: &'a str,
}

/// `{"msgtype":"markdown","markdown":{"content":…}}`.
pub fn wecom_body(msg: Message<'_>) -> String {
    let content = markdown(msg);
    to_json(&WeCom { msgtype: "markdown", markdown: WeComMarkdown { content: &content } })
}

/// Feishu's signature: HMAC-SHA256 KEYED by `"{timestamp_s}\n{secret}"` over an empty
/// message, base64.
pub fn feishu_sign(secret: &str, timestamp_s: i64) -> String {
    hmac_base64(format!("{timestamp_s}\n{secret}").as_bytes(), b"")
}

#[derive(Serialize)]
struct Feishu {
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sign: Option<String>,
    msg_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    card: Option<serde_json::Value>,
}

/// The Feishu bot body; `sign` is `(secret, timestamp in SECONDS)` when the bot checks signatures.
///
/// - text: `{"timestamp","sign","msg_type":"text","content":{"text":…}}`
/// - post: `content.post.zh_cn = {"title", "content": [[{"tag":"text","text":line}], …]}`
/// - interactive: `card = {"header":{"title":{"tag":"plain_text","content"}},
///   "elements":[{"tag":"div","text":{"tag":"lark_md","content":markdown}}]}`
pub fn feishu_body(style: FeishuStyle, msg: Message<'_>, sign: Option<(&str, i64)>) -> String {
    let (timestamp, sign) = match sign {
        Some((secret, ts)) => (Some(ts.to_string()), Some(feishu_sign(secret, ts))),
        None => (None, None),
    };
    let mut body = Feishu { timestamp, sign, msg_type: "text", content: None, card: None };
    match style {
        FeishuStyle::Text => {
            body.content = Some(serde_json::json!({ "text": plain(msg) }));
        }
        FeishuStyle::Post => {
            body.msg_type = "post";
            let rows: Vec<serde_json::Value> =
                lines(msg).into_iter().map(|l| serde_json::json!([{ "tag": "text", "text": l }])).collect();
            body.content =
                Some(serde_json::json!({ "post": { "zh_cn": { "title": title(msg), "content": rows } } }));
        }
        FeishuStyle::Interactive => {
            body.msg_type = "interactive";
            let text = lines(msg).into_iter().map(|l| format!("- {l}")).collect::<Vec<_>>().join("\n");
            body.card = Some(serde_json::json!({
                "header": { "title": { "tag": "plain_text", "content": title(msg) } },
                "elements": [ { "tag": "div", "text": { "tag": "lark_md", "content": text } } ],
            }));
        }
    }
    to_json(&body)
}

/// `{"text": …}`.
pub fn slack_body(msg: Message<'_>) -> String {
    to_json(&serde_json::json!({ "text": plain(msg) }))
}

/// The masked notice as JSON; a digest is `{"kind":"digest","count":n,"notices":[…]}`.
pub fn webhook_body(msg: Message<'_>) -> String {
    match msg {
        Message::One(n) => to_json(&n.masked()),
        Message::Digest(ns) => {
            let notices: Vec<Notice> = ns.iter().map(Notice::masked).collect();
            to_json(&serde_json::json!({ "kind": "digest", "count": ns.len(), "notices": notices }))
        }
    }
}

/// How a sink's answer is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The vendor took the message.
    Delivered,
    /// Worth another try later (5xx, 408, 429, a vendor error code such as "too fast").
    Retry(String),
    /// Refused for good (other 4xx): retrying would only repeat it.
    Refused(String),
}

/// Reads an HTTP answer. DingTalk and WeCom answer 200 with `errcode`, Feishu with `code`
/// (`StatusCode` in older bots); a non-zero one means the message was not posted.
pub fn outcome(vendor: Vendor, status: u16, body: &str) -> Outcome {
    match status {
        200..=299 => {}
        408 | 429 | 500..=599 => return Outcome::Retry(format!("HTTP {status}")),
        _ => {
            return Outcome::Refused(format!(
                "HTTP {status}: {}",
                body.chars().take(200).collect::<String>()
            ));
        }
    }
    let fields: &[&str] = match vendor {
        Vendor::DingTalk | Vendor::WeCom => &["errcode"],
        Vendor::Feishu(_) => &["code", "StatusCode"],
        _ => &[],
    };
    if fields.is_empty() {
        return Outcome::Delivered;
    }
    let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
        return Outcome::Delivered;
    };
    for f in fields {
        if let Some(code) = json.get(*f).and_then(serde_json::Value::as_i64).filter(|&c| c != 0) {
            let msg =
                ["errmsg", "msg", "StatusMessage"].iter().find_map(|k| json.get(*k)).and_then(|v| v.as_str());
            return Outcome::Retry(format!("{f} {code}: {}", msg.unwrap_or("")));
        }
    }
    Outcome::Delivered
}

/// A 3xx answer. kefu follows no redirect: following one posts the alert (and the URL's
/// token, in `Referer`) to another host, or turns it into a body-less GET. A redirect is a
/// failure for good, named by the target's host only — never its URL, which may carry a
/// token too.
pub fn redirected(status: u16, url: &str, location: Option<&str>) -> Outcome {
    let target = location
        .and_then(|l| url::Url::parse(url).ok()?.join(l).ok())
        .and_then(|u| u.host_str().map(|h| u.port().map_or_else(|| h.to_string(), |p| format!("{h}:{p}"))));
    let to = target.map_or_else(|| "no readable location".to_string(), |t| format!("host {t}"));
    Outcome::Refused(format!(
        "HTTP {status} redirect to {to}: kefu follows no redirects; set the sink's url to the address that answers"
    ))
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising our own structs of strings and numbers cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    // HMAC accepts keys of any length; the error branch is unreachable.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(message);
    BASE64.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::notice::Kind;

    fn breach() -> Notice {
        Notice {
            kind: Kind::Breach,
            shop: "旗舰店".into(),
            agent: "小王".into(),
            agent_group: Some("售前".into()),
            conversation: "c1".into(),
            customer: "tb_buyer_8842".into(),
            wait_start: 1_762_826_400_000,
            due_at: 1_762_826_420_000,
            waited_ms: 20_000,
            deadline_ms: 20_000,
            load: 3,
            preview: "在吗?电话13812345678".into(),
            detail: None,
        }
    }

    #[test]
    fn a_redirect_is_refused_and_named_by_its_host_only() {
        let url = "https://oapi.dingtalk.com/robot/send?access_token=SECRET";
        // (status, Location, the host named)
        let cases = [
            (307, Some("http://10.0.0.9:8080/x?access_token=SECRET"), "host 10.0.0.9:8080"),
            (302, Some("https://evil.example/hook?key=SECRET"), "host evil.example"),
            (301, Some("/moved?key=SECRET"), "host oapi.dingtalk.com"),
            (308, None, "no readable location"),
        ];
        for (status, location, host) in cases {
            let Outcome::Refused(why) = redirected(status, url, location) else { panic!("not refused") };
            assert!(why.contains(&format!("HTTP {status} redirect to {host}:")), "{why}");
            assert!(!why.contains("SECRET") && !why.contains("/x") && !why.contains("/hook"), "{why}");
        }
    }

    #[test]
    fn outcomes() {
        let d = Vendor::DingTalk;
        let f = Vendor::Feishu(FeishuStyle::Post);
        let cases = [
            (d, 200, r#"{"errcode":0,"errmsg":"ok"}"#, Outcome::Delivered),
            (
                d,
                200,
                r#"{"errcode":130101,"errmsg":"send too fast"}"#,
                Outcome::Retry("errcode 130101: send too fast".into()),
            ),
            (
                Vendor::WeCom,
                200,
                r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
                Outcome::Retry("errcode 45009: api freq out of limit".into()),
            ),
            (f, 200, r#"{"code":0,"msg":"success"}"#, Outcome::Delivered),
            (
                f,
                200,
                r#"{"code":19021,"msg":"sign match fail"}"#,
                Outcome::Retry("code 19021: sign match fail".into()),
            ),
            (f, 200, r#"{"StatusCode":0}"#, Outcome::Delivered),
            (Vendor::Webhook, 204, "", Outcome::Delivered),
            (Vendor::Webhook, 200, r#"{"errcode":5}"#, Outcome::Delivered),
            (d, 500, "", Outcome::Retry("HTTP 500".into())),
            (d, 503, "", Outcome::Retry("HTTP 503".into())),
            (d, 429, "", Outcome::Retry("HTTP 429".into())),
            (Vendor::Slack, 404, "no_service", Outcome::Refused("HTTP 404: no_service".into())),
        ];
        for (vendor, status, body, want) in cases {
            assert_eq!(outcome(vendor, status, body), want, "{vendor:?} {status} {body}");
        }
    }

    /// Feishu post and interactive, Slack and generic webhook bodies, pinned.
    #[test]
    fn exact_bodies_of_the_other_sinks() {
        let n = Notice {
            kind: Kind::Breach,
            shop: "店".into(),
            agent: "小王".into(),
            agent_group: None,
            conversation: "c1".into(),
            customer: "buyer1".into(),
            wait_start: 1_762_826_400_000,
            due_at: 1_762_826_420_000,
            waited_ms: 20_000,
            deadline_ms: 20_000,
            load: 3,
            preview: "在吗".into(),
            detail: None,
        };
        let one = Message::One(&n);
        let cases = [
            (
                feishu_body(FeishuStyle::Post, one, None),
                r#"{"msg_type":"post","content":{"post":{"zh_cn":{"content":[[{"tag":"text","text":"店铺: 店"}],[{"tag":"text","text":"客服: 小王"}],[{"tag":"text","text":"买家: b***1"}],[{"tag":"text","text":"已等待: 20 秒 (时限 20 秒, 接待 3 人)"}],[{"tag":"text","text":"买家最后消息: 在吗"}],[{"tag":"text","text":"时间: 11-11 10:00:20 (北京时间)"}]],"title":"响应超时 · 小王"}}}}"#,
            ),
            (
                feishu_body(FeishuStyle::Interactive, one, None),
                r#"{"msg_type":"interactive","card":{"elements":[{"tag":"div","text":{"content":"- 店铺: 店\n- 客服: 小王\n- 买家: b***1\n- 已等待: 20 秒 (时限 20 秒, 接待 3 人)\n- 买家最后消息: 在吗\n- 时间: 11-11 10:00:20 (北京时间)","tag":"lark_md"}}],"header":{"title":{"content":"响应超时 · 小王","tag":"plain_text"}}}}"#,
            ),
            (
                slack_body(one),
                r#"{"text":"响应超时 · 小王\n店铺: 店\n客服: 小王\n买家: b***1\n已等待: 20 秒 (时限 20 秒, 接待 3 人)\n买家最后消息: 在吗\n时间: 11-11 10:00:20 (北京时间)"}"#,
            ),
            (
                webhook_body(one),
                r#"{"kind":"breach","shop":"店","agent":"小王","agent_group":null,"conversation":"c1","customer":"b***1","wait_start":1762826400000,"due_at":1762826420000,"waited_ms":20000,"deadline_ms":20000,"load":3,"preview":"在吗","detail":null}"#,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn durations() {
        let cases = [
            (0, "0 秒"),
            (20_000, "20 秒"),
            (59_999, "59 秒"),
            (65_000, "1 分 05 秒"),
            (7_380_000, "2 小时 03 分"),
            (-5, "0 秒"),
        ];
        for (ms, want) in cases {
            assert_eq!(duration(ms), want, "{ms}");
        }
    }

    #[test]
    fn markdown_names_everything_and_masks_the_buyer() {
        let n = breach();
        assert_eq!(
            markdown(Message::One(&n)),
            "### 响应超时 · 小王\n- 店铺: 旗舰店\n- 客服: 小王 (售前)\n- 买家: t***2\n- 已等待: 20 秒 (时限 20 秒, 接待 3 人)\n- 买家最后消息: 在吗?电话138****5678\n- 时间: 11-11 10:00:20 (北京时间)"
        );
    }

    #[test]
    fn no_body_carries_a_raw_id() {
        let n = breach();
        let two = [breach(), breach()];
        let vendors = [
            Vendor::DingTalk,
            Vendor::WeCom,
            Vendor::Feishu(FeishuStyle::Text),
            Vendor::Feishu(FeishuStyle::Post),
            Vendor::Feishu(FeishuStyle::Interactive),
            Vendor::Slack,
            Vendor::Webhook,
        ];
        for v in vendors {
            for msg in [Message::One(&n), Message::Digest(&two)] {
                let r = request(v, "http://x/", None, msg, 0);
                assert!(
                    !r.body.contains("tb_buyer_8842") && !r.body.contains("13812345678"),
                    "{v:?} {}",
                    r.body
                );
                let _: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            }
        }
        assert!(!terminal_line(Message::One(&n)).contains("tb_buyer_8842"));
    }

    #[test]
    fn signatures_match_vendor_examples() {
        // Computed independently with Python's hmac/hashlib/base64 per the vendors' docs.
        assert_eq!(
            dingtalk_sign("SECxyz", 1_700_000_000_000),
            "0PUR1j8g85Xg3vlFV/UrEcxXfF5HpCAGzcjrNfyJoyg="
        );
        assert_eq!(feishu_sign("abc", 1_700_000_000), "VIS10b0EBvzzSdFnuk4tznEmK5wHaruvf/WnViv2yR4=");
        assert_eq!(
            dingtalk_signed_url(
                "https://oapi.dingtalk.com/robot/send?access_token=t",
                "SECxyz",
                1_700_000_000_000
            ),
            "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1700000000000&sign=0PUR1j8g85Xg3vlFV%2FUrEcxXfF5HpCAGzcjrNfyJoyg%3D"
        );
    }

    #[test]
    fn digest_lists_and_counts() {
        let many: Vec<Notice> = (0..25).map(|_| breach()).collect();
        let text = plain(Message::Digest(&many));
        assert!(text.starts_with("告警汇总 · 25 条\n"), "{text}");
        assert_eq!(text.matches("响应超时 · 小王 · 买家 t***2").count(), DIGEST_LINES);
        assert!(text.contains("另有 5 条"), "{text}");
    }
}

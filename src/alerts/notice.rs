//! What an alert is about: one [`Notice`] per wait and kind, identified by its [`NoticeKey`].
//!
//! A notice carries the buyer's raw id and raw last message, because it is stored in the
//! outbox beside the events; everything a person reads goes through [`Notice::masked_customer`]
//! and [`Notice::masked_preview`].

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::engine::{Breach, Wait, WaitStart};
use crate::privacy::{mask_id, mask_phone};
use crate::time::Millis;

/// Characters of the buyer's last message shown in an alert.
pub const PREVIEW_CHARS: usize = 30;

/// The kind of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The wait reached a fraction of its deadline: the agent should answer now.
    Warning,
    /// The deadline passed without an answer.
    Breach,
    /// The wait reached a multiple of its deadline; goes to the supervisors' channel.
    Escalation,
    /// The agent answered after a breach.
    Resolved,
    /// A phrase-guard finding (`detail` says what).
    Guard,
    /// A periodic summary (`detail` holds it).
    Summary,
}

impl Kind {
    /// Every kind, in the order they happen to a wait.
    pub const ALL: [Kind; 6] =
        [Kind::Warning, Kind::Breach, Kind::Escalation, Kind::Resolved, Kind::Guard, Kind::Summary];

    /// The name used in files, the database and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Warning => "warning",
            Kind::Breach => "breach",
            Kind::Escalation => "escalation",
            Kind::Resolved => "resolved",
            Kind::Guard => "guard",
            Kind::Summary => "summary",
        }
    }

    /// Parses the name written by [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The headline a supervisor reads.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Warning => "即将超时",
            Kind::Breach => "响应超时",
            Kind::Escalation => "严重超时",
            Kind::Resolved => "超时已回复",
            Kind::Guard => "违规提醒",
            Kind::Summary => "汇总",
        }
    }

    /// Whether the kind is about a buyer's wait (and so shows waited/deadline/load).
    pub fn is_wait(self) -> bool {
        matches!(self, Kind::Warning | Kind::Breach | Kind::Escalation | Kind::Resolved)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert to deliver. Its `Debug` output masks the buyer, so a notice in a log is safe.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// What happened.
    pub kind: Kind,
    /// The shop.
    pub shop: String,
    /// The agent the conversation is assigned to.
    pub agent: String,
    /// The agent's group (售前, 售后 …), used for routing; filled from the config when absent.
    #[serde(default)]
    pub agent_group: Option<String>,
    /// The conversation.
    pub conversation: String,
    /// The buyer's RAW id; masked whenever rendered.
    pub customer: String,
    /// When the buyer's wait started (for guard/summary notices: the instant they are about).
    pub wait_start: Millis,
    /// When the alert became due.
    pub due_at: Millis,
    /// How long the buyer had waited at `due_at`.
    pub waited_ms: i64,
    /// The wait's deadline.
    pub deadline_ms: i64,
    /// The agent's load (buyers in conversation at once) when the wait started.
    pub load: u32,
    /// The buyer's last message, RAW; masked and shortened whenever rendered.
    pub preview: String,
    /// Free text for guard findings and summaries.
    #[serde(default)]
    pub detail: Option<String>,
}

impl fmt::Debug for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notice")
            .field("kind", &self.kind)
            .field("shop", &self.shop)
            .field("agent", &self.agent)
            .field("agent_group", &self.agent_group)
            .field("conversation", &self.conversation)
            .field("customer", &self.masked_customer())
            .field("wait_start", &self.wait_start)
            .field("due_at", &self.due_at)
            .field("waited_ms", &self.waited_ms)
            .field("deadline_ms", &self.deadline_ms)
            .field("load", &self.load)
            .field("preview", &self.masked_preview())
            .field("detail", &self.detail.as_deref().map(mask_text))
            .finish()
    }
}

/// What makes a notice unique: a second notice with the same key is never queued again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoticeKey {
    /// The conversation.
    pub conversation: String,
    /// The wait's start.
    pub wait_start: Millis,
    /// The kind.
    pub kind: Kind,
}

impl Notice {
    /// The stable key `(conversation, wait_start, kind)`.
    pub fn key(&self) -> NoticeKey {
        NoticeKey { conversation: self.conversation.clone(), wait_start: self.wait_start, kind: self.kind }
    }

    /// The buyer id as people may see it.
    pub fn masked_customer(&self) -> String {
        mask_id(&self.customer)
    }

    /// The buyer's last message with phone numbers and long ids masked, on one line, at most
    /// [`PREVIEW_CHARS`] characters (an ellipsis marks a cut).
    pub fn masked_preview(&self) -> String {
        preview(&self.preview)
    }

    /// A notice of `kind` due at `due_at` for a wait the clock started (warnings and
    /// escalations from [`super::Plan::schedule`]); `preview` is the buyer's last message, raw.
    pub fn for_wait(kind: Kind, wait: &WaitStart, due_at: Millis, preview: &str) -> Notice {
        Notice {
            kind,
            shop: wait.shop.to_string(),
            agent: wait.agent.to_string(),
            agent_group: None,
            conversation: wait.conversation.to_string(),
            customer: wait.customer.to_string(),
            wait_start: wait.start,
            due_at,
            waited_ms: due_at - wait.start,
            deadline_ms: wait.deadline_ms,
            load: wait.load,
            preview: preview.to_string(),
            detail: None,
        }
    }

    /// The breach notice for the clock's [`Breach`] output.
    pub fn for_breach(b: &Breach, preview: &str) -> Notice {
        Notice {
            kind: Kind::Breach,
            shop: b.shop.to_string(),
            agent: b.agent.to_string(),
            agent_group: None,
            conversation: b.conversation.to_string(),
            customer: b.customer.to_string(),
            wait_start: b.wait_start,
            due_at: b.due_at,
            waited_ms: b.due_at - b.wait_start,
            deadline_ms: b.deadline_ms,
            load: b.load,
            preview: preview.to_string(),
            detail: None,
        }
    }

    /// The `resolved` notice for a wait that ended; due when it ended (ask
    /// [`super::Plan::resolved`] first whether one is wanted).
    pub fn for_resolved(w: &Wait, preview: &str) -> Notice {
        Notice {
            kind: Kind::Resolved,
            shop: w.shop.to_string(),
            agent: w.agent.to_string(),
            agent_group: None,
            conversation: w.conversation.to_string(),
            customer: w.customer.to_string(),
            wait_start: w.start,
            due_at: w.end,
            waited_ms: w.waited_ms(),
            deadline_ms: w.deadline_ms,
            load: w.load,
            preview: preview.to_string(),
            detail: None,
        }
    }

    /// The alert for a `critical` phrase-guard flag. `text` is the message with personal
    /// data already masked by the guard ([`crate::guard::Guard::mask`]); the key is the
    /// conversation and the message time, so the flags of one message make one alert.
    pub fn for_guard(alert: &crate::guard::GuardAlert, customer: &str, text: &str) -> Notice {
        Notice {
            kind: Kind::Guard,
            shop: alert.shop.clone(),
            agent: alert.agent.clone(),
            agent_group: None,
            conversation: alert.conversation.clone(),
            customer: customer.to_string(),
            wait_start: alert.ts,
            due_at: alert.ts,
            waited_ms: 0,
            deadline_ms: 0,
            load: 0,
            preview: text.to_string(),
            detail: Some(format!("{} ({}): {}", alert.category, alert.severity.as_str(), alert.matched)),
        }
    }

    /// A periodic summary (the nightly scoring job's) about the instant `at`; its key is
    /// `(subject, at, summary)`, so the same run reported twice makes one alert.
    pub fn summary(subject: &str, at: Millis, text: &str) -> Notice {
        Notice {
            kind: Kind::Summary,
            shop: String::new(),
            agent: String::new(),
            agent_group: None,
            conversation: subject.to_string(),
            customer: String::new(),
            wait_start: at,
            due_at: at,
            waited_ms: 0,
            deadline_ms: 0,
            load: 0,
            preview: String::new(),
            detail: Some(text.to_string()),
        }
    }

    /// A copy safe to hand to a third party: buyer id, preview and detail masked.
    pub fn masked(&self) -> Notice {
        Notice {
            customer: self.masked_customer(),
            preview: self.masked_preview(),
            detail: self.detail.as_deref().map(mask_text),
            ..self.clone()
        }
    }
}

/// Masks phone numbers and long digit/letter ids anywhere in free text.
///
/// Masking happens before shortening so a cut can never leave half a phone number readable.
pub fn mask_text(text: &str) -> String {
    static SECRETS: OnceLock<Option<Regex>> = OnceLock::new();
    // A mainland mobile number, or any run of 6+ digits (order numbers, ID cards, QQ numbers).
    let re = SECRETS.get_or_init(|| Regex::new(r"1[3-9][0-9]{9}|[0-9Xx]{6,}").ok());
    let Some(re) = re else {
        return text.to_string();
    };
    re.replace_all(text, |c: &regex::Captures<'_>| {
        let s = &c[0];
        if s.len() == 11 && s.starts_with('1') { mask_phone(s) } else { mask_id(s) }
    })
    .into_owned()
}

/// The masked, one-line, shortened preview of a buyer's message.
pub fn preview(text: &str) -> String {
    let masked = mask_text(text);
    let flat: String =
        masked.split_whitespace().collect::<Vec<_>>().join(" ").chars().filter(|c| !c.is_control()).collect();
    if flat.chars().count() <= PREVIEW_CHARS {
        return flat;
    }
    let mut cut: String = flat.chars().take(PREVIEW_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_masked_then_shortened() {
        let cases = [
            ("在吗", "在吗"),
            ("电话13812345678 请回电", "电话138****5678 请回电"),
            ("订单 2026111112345678 没到", "订单 2***8 没到"),
            ("line\nbreak\t here", "line break here"),
            (
                "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十多余",
                "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十…",
            ),
            ("价格 199 元", "价格 199 元"),
            // A phone number at the cut is masked before the cut, never shown in part.
            ("aaaaaaaaaaaaaaaaaaaaaaaaaa13812345678", "aaaaaaaaaaaaaaaaaaaaaaaaaa138*…"),
        ];
        for (raw, want) in cases {
            assert_eq!(preview(raw), want, "{raw}");
        }
    }

    #[test]
    fn notices_from_clock_outputs() {
        use crate::engine::Outcome;
        let start = WaitStart {
            conversation: "c1".into(),
            shop: "s".into(),
            customer: "b".into(),
            agent: "a".into(),
            start: 1_000,
            deadline_ms: 20_000,
            load: 2,
            first: true,
        };
        let w = Notice::for_wait(Kind::Escalation, &start, 61_000, "hi");
        assert_eq!((w.wait_start, w.due_at, w.waited_ms, w.load), (1_000, 61_000, 60_000, 2));
        let b = Breach {
            conversation: "c1".into(),
            shop: "s".into(),
            customer: "b".into(),
            agent: "a".into(),
            wait_start: 1_000,
            due_at: 21_000,
            deadline_ms: 20_000,
            load: 2,
        };
        let n = Notice::for_breach(&b, "hi");
        assert_eq!((n.kind, n.waited_ms), (Kind::Breach, 20_000));
        assert_eq!(n.key(), NoticeKey { conversation: "c1".into(), wait_start: 1_000, kind: Kind::Breach });
        let ended = Wait {
            conversation: "c1".into(),
            shop: "s".into(),
            customer: "b".into(),
            agent: "a".into(),
            start: 1_000,
            end: 26_000,
            outcome: Outcome::Answered,
            deadline_ms: 20_000,
            load: 2,
            first: true,
            robot: false,
        };
        let r = Notice::for_resolved(&ended, "");
        assert_eq!((r.kind, r.due_at, r.waited_ms), (Kind::Resolved, 26_000, 25_000));
    }

    #[test]
    fn debug_output_masks_the_buyer() {
        let n = Notice {
            kind: Kind::Guard,
            shop: "s".into(),
            agent: "a".into(),
            agent_group: None,
            conversation: "c".into(),
            customer: "tb_buyer_8842".into(),
            wait_start: 0,
            due_at: 0,
            waited_ms: 0,
            deadline_ms: 0,
            load: 0,
            preview: "13812345678".into(),
            detail: Some("buyer phone 13912345678".into()),
        };
        let text = format!("{n:?}");
        for raw in ["tb_buyer_8842", "13812345678", "13912345678"] {
            assert!(!text.contains(raw), "{text}");
        }
        assert!(text.contains("t***2"), "{text}");
    }

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("Breach"), None);
    }
}

//! Websocket frames of the replies module (specified in `docs/replies.md`).
//!
//! Out: the robot's `send` (as bot), `suggest` and `transfer` frames. In and out: the
//! `replies.find` lookup, answered by [`handle_op`], a pure function, so the gateway only
//! routes frames.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Replies;
use super::quick::Rank;
use super::robot::RobotAction;

/// Results returned when a request gives no `limit`.
pub const DEFAULT_LIMIT: usize = 10;
/// Most results a request may ask for.
pub const MAX_LIMIT: usize = 50;

/// `{"op":"send","id":…,"conversation":…,"text":…,"as":"bot"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename = "send")]
pub struct SendFrame {
    /// Frame id, for the gateway's ack.
    pub id: String,
    /// Conversation.
    pub conversation: String,
    /// Text.
    pub text: String,
    /// Always `bot` for the robot.
    #[serde(rename = "as")]
    pub as_: String,
}

/// `{"op":"suggest","id":…,"agent":…,"conversation":…,"text":…,"rule":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename = "suggest")]
pub struct SuggestFrame {
    /// Frame id.
    pub id: String,
    /// The agent to show it to.
    pub agent: String,
    /// Conversation.
    pub conversation: String,
    /// Suggested answer.
    pub text: String,
    /// Auto-answer rule it came from.
    pub rule: String,
}

/// `{"op":"transfer","id":…,"conversation":…,"from_agent":…,"to_agent":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename = "transfer")]
pub struct TransferFrame {
    /// Frame id.
    pub id: String,
    /// Conversation.
    pub conversation: String,
    /// Current agent.
    pub from_agent: String,
    /// Agent taking over.
    pub to_agent: String,
}

/// `{"op":"replies.find","id":…,"agent":…,"query":…,"limit":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename = "replies.find")]
pub struct FindRequest {
    /// Request id, echoed in the response.
    pub id: String,
    /// The agent asking: sees the team set and their own personal set.
    pub agent: String,
    /// Code, code prefix or words of the text.
    pub query: String,
    /// Most results wanted (default 10, at most 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One phrase in a [`FindResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundPhrase {
    /// Shortcut code.
    pub code: String,
    /// Text, variables unfilled.
    pub text: String,
    /// Group; empty: ungrouped.
    pub group: String,
    /// `team` or `personal`.
    pub scope: String,
    /// `code_prefix`, `code_contains` or `text_contains`.
    pub rank: String,
}

/// `{"op":"replies.found","id":…,"results":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename = "replies.found")]
pub struct FindResponse {
    /// The request's id.
    pub id: String,
    /// Best first.
    pub results: Vec<FoundPhrase>,
}

/// `{"op":"replies.error","id":…,"error":…}`: a `replies.*` request that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename = "replies.error")]
pub struct ErrorFrame {
    /// The request's id, when it had one.
    pub id: Option<String>,
    /// What was wrong.
    pub error: String,
}

/// The frame for a robot action; `None` for bookkeeping actions (hits, misses), which go
/// to the store instead.
pub fn action_frame(action: &RobotAction, id: &str) -> Option<Value> {
    let v = match action {
        RobotAction::Send { conversation, text, .. } => serde_json::to_value(SendFrame {
            id: id.to_string(),
            conversation: conversation.clone(),
            text: text.clone(),
            as_: "bot".into(),
        }),
        RobotAction::Suggest { agent, conversation, text, rule } => serde_json::to_value(SuggestFrame {
            id: id.to_string(),
            agent: agent.clone(),
            conversation: conversation.clone(),
            text: text.clone(),
            rule: rule.clone(),
        }),
        RobotAction::Transfer { conversation, from_agent, to_agent } => serde_json::to_value(TransferFrame {
            id: id.to_string(),
            conversation: conversation.clone(),
            from_agent: from_agent.clone(),
            to_agent: to_agent.clone(),
        }),
        RobotAction::Hit { .. }
        | RobotAction::Miss { .. }
        | RobotAction::PhraseUsed { .. }
        | RobotAction::Figure { .. } => return None,
    };
    v.ok()
}

/// The frames for a batch of robot actions, numbering them `bot-1`, `bot-2` … from
/// `next_id`; bookkeeping actions are skipped (see [`super::stats::record`]).
pub fn frames(actions: &[RobotAction], next_id: &mut u64) -> Vec<Value> {
    let mut out = Vec::new();
    for a in actions {
        let id = format!("bot-{next_id}");
        if let Some(f) = action_frame(a, &id) {
            *next_id += 1;
            out.push(f);
        }
    }
    out
}

/// Answers a `replies.*` frame; `None` when the frame is not one of ours.
pub fn handle_op(replies: &Replies, frame: &Value) -> Option<Value> {
    let op = frame.get("op")?.as_str()?;
    if !op.starts_with("replies.") {
        return None;
    }
    let id = frame.get("id").and_then(Value::as_str).map(str::to_string);
    let reply = match op {
        "replies.find" => match FindRequest::deserialize(frame) {
            Ok(req) => serde_json::to_value(find(replies, &req)),
            Err(e) => serde_json::to_value(ErrorFrame { id, error: format!("bad replies.find: {e}") }),
        },
        _ => serde_json::to_value(ErrorFrame { id, error: format!("unknown op `{op}`") }),
    };
    reply.ok()
}

fn find(replies: &Replies, req: &FindRequest) -> FindResponse {
    let limit = req.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let results = replies
        .quick
        .find(Some(&req.agent), &req.query, limit)
        .into_iter()
        .map(|h| FoundPhrase {
            code: h.phrase.code.clone(),
            text: h.phrase.text.clone(),
            group: h.phrase.group.clone(),
            scope: if h.phrase.agent.is_some() { "personal" } else { "team" }.into(),
            rank: match h.rank {
                Rank::CodePrefix => "code_prefix",
                Rank::CodeContains => "code_contains",
                Rank::TextContains => "text_contains",
            }
            .into(),
        })
        .collect();
    FindResponse { id: req.id.clone(), results }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::replies::robot::Reason;

    fn replies() -> Replies {
        crate::replies::load(None, None).unwrap()
    }

    #[test]
    fn find_op_answers_ranked_phrases() {
        let r = replies();
        let out =
            handle_op(&r, &json!({"op":"replies.find","id":"q1","agent":"小美","query":"发货","limit":3}))
                .unwrap();
        let resp: FindResponse = serde_json::from_value(out).unwrap();
        assert_eq!(resp.id, "q1");
        assert!(!resp.results.is_empty() && resp.results.len() <= 3);
        assert!(resp.results.iter().all(|p| p.text.contains("发货") || p.code.contains("发货")));
    }

    #[test]
    fn bad_and_foreign_frames() {
        let r = replies();
        assert_eq!(handle_op(&r, &json!({"op":"send","id":"1"})), None);
        assert_eq!(handle_op(&r, &json!({"no":"op"})), None);
        let out = handle_op(&r, &json!({"op":"replies.find","id":"q2","agent":"a"})).unwrap();
        assert_eq!(out["op"], "replies.error");
        assert_eq!(out["id"], "q2");
        assert!(out["error"].as_str().unwrap().contains("missing field `query`"), "{out}");
        let out = handle_op(&r, &json!({"op":"replies.nope"})).unwrap();
        assert!(out["error"].as_str().unwrap().contains("unknown op"), "{out}");
    }

    #[test]
    fn action_frames_have_the_gateway_shape() {
        let send = RobotAction::Send {
            conversation: "c1".into(),
            text: "亲,在的".into(),
            as_bot: true,
            reason: Reason::Away,
            rule: None,
        };
        assert_eq!(
            action_frame(&send, "r1").unwrap(),
            json!({"op":"send","id":"r1","conversation":"c1","text":"亲,在的","as":"bot"})
        );
        let suggest = RobotAction::Suggest {
            agent: "小美".into(),
            conversation: "c1".into(),
            text: "默认中通".into(),
            rule: "express".into(),
        };
        let v = action_frame(&suggest, "r2").unwrap();
        assert_eq!(v["op"], "suggest");
        let back: SuggestFrame = serde_json::from_value(v).unwrap();
        assert_eq!((back.agent.as_str(), back.rule.as_str()), ("小美", "express"));
        let hit = RobotAction::Hit { shop: "s".into(), rule: "x".into(), ts: 0 };
        assert_eq!(action_frame(&hit, "r3"), None);
    }
}

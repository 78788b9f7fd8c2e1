//! The wire protocol's frames (see `docs/protocol.md`, "Wire protocol"), shared by the
//! client ([`super::client`]) and the simulator server.
//!
//! Decoding never fails: a frame kefu cannot use becomes [`Incoming::Rejected`], which
//! keeps its seq when one can be found so it is acked and not redelivered forever.

use serde::{Deserialize, Serialize};

use crate::event::{self, Event};

/// Frames above this size are rejected (stored truncated, acked) instead of parsed.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Frames above this size break the connection (tungstenite refuses to buffer them).
/// It sits well above [`MAX_FRAME_BYTES`] so an oversized frame is a rejected frame, not
/// a reconnect loop.
pub const HARD_FRAME_BYTES: usize = 16 << 20;

/// How much of a rejected frame the rejected table keeps.
pub const KEEP_REJECTED_BYTES: usize = 4096;

/// The highest seq kefu takes: 2^53 − 1, the largest integer every JSON reader (a
/// JavaScript platform's included) holds exactly. Far above any real stream.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// How far past the last seq kefu knows (the resume point, or the highest seq taken on
/// this connection) one frame may jump. A platform may skip seqs, but not by millions:
/// one jump that large would become the resume point and hide everything after it.
pub const MAX_SEQ_STEP: u64 = 1_000_000;

/// A frame kefu sends to the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ClientFrame {
    /// First frame of every connection.
    Hello {
        /// `kefu/<version>`.
        client: String,
        /// The last seq kefu has persisted; the platform sends from the next one.
        resume_after: Option<u64>,
    },
    /// Every frame up to `seq` is persisted (cumulative).
    Ack {
        /// Highest persisted seq.
        seq: u64,
    },
    /// Speak in a conversation as the robot.
    Send {
        /// Unique id, so a platform can drop a resent duplicate.
        id: String,
        /// Conversation id.
        conversation: String,
        /// Message text.
        text: String,
        /// Always `bot`.
        #[serde(rename = "as")]
        sender: String,
    },
}

impl ClientFrame {
    /// The frame as JSON text.
    pub fn to_text(&self) -> String {
        // A derived Serialize of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A frame from the platform, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A valid event.
    Event {
        /// Its position in the platform's stream.
        seq: u64,
        /// The event.
        event: Event,
        /// Its JSON, as stored.
        body: String,
    },
    /// A frame that is not a usable event.
    Rejected(RejectedFrame),
    /// A frame with another op (`replies.find`, `pong` …): the runtime answers the ones it
    /// knows (`replies.*`) and ignores the rest.
    Other(serde_json::Value),
}

/// A frame kefu could not use, kept for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedFrame {
    /// Its seq, when one could be read (then it is acked, unless [`Self::ackable`] is false).
    pub seq: Option<u64>,
    /// False when the seq itself broke the seq rule ([`check_seq`]): the frame is kept
    /// with its seq, but that seq is never acked nor made the resume point.
    pub ackable: bool,
    /// What was wrong.
    pub reason: String,
    /// The frame text, cut to [`KEEP_REJECTED_BYTES`].
    pub raw: String,
}

/// Decodes one text frame from the platform.
pub fn decode(text: &str) -> Incoming {
    if text.len() > MAX_FRAME_BYTES {
        return reject(
            text,
            sniff_seq(text),
            format!("frame of {} bytes is above the {} byte limit", text.len(), MAX_FRAME_BYTES),
        );
    }
    if let Some(fast) = decode_canonical(text) {
        return fast;
    }
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return reject(text, sniff_seq(text), format!("not JSON: {e}")),
    };
    let op = value.get("op").and_then(|o| o.as_str()).unwrap_or("");
    if op != "event" {
        if op.is_empty() {
            return reject(text, None, "frame has no `op`".into());
        }
        return Incoming::Other(value);
    }
    let Some(seq) = value.get("seq").and_then(serde_json::Value::as_u64) else {
        return reject(text, None, "event frame without a numeric `seq`".into());
    };
    let Some(body) = value.get("event") else {
        return reject(text, Some(seq), "event frame without `event`".into());
    };
    match event::from_value(body) {
        Ok(event) => Incoming::Event { seq, event, body: body.to_string() },
        Err(e) => reject(text, Some(seq), e.to_string()),
    }
}

/// The common case, `{"op":"event","seq":N,"event":{…}}` exactly as [`event_frame`] writes
/// it, without building a JSON tree: the event is parsed in place by the replay parser and
/// stored as the platform wrote it. Anything else (other spacing or key order, extra keys,
/// an invalid event) returns `None` and takes the general path, which names the problem.
fn decode_canonical(text: &str) -> Option<Incoming> {
    let rest = text.strip_prefix(r#"{"op":"event","seq":"#)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let seq: u64 = rest[..digits].parse().ok()?;
    let body = rest[digits..].strip_prefix(r#","event":"#)?.strip_suffix('}')?;
    let event = event::parse(body).ok()?;
    Some(Incoming::Event { seq, event, body: body.to_string() })
}

fn reject(text: &str, seq: Option<u64>, reason: String) -> Incoming {
    Incoming::Rejected(RejectedFrame {
        seq,
        ackable: true,
        reason,
        raw: truncate(text, KEEP_REJECTED_BYTES).to_string(),
    })
}

impl RejectedFrame {
    /// The seq this frame lets kefu ack (and resume after), if any.
    pub fn ack_seq(&self) -> Option<u64> {
        self.seq.filter(|_| self.ackable)
    }
}

/// The seq rule: a seq is an integer from 1 to [`MAX_SEQ`], and at most [`MAX_SEQ_STEP`]
/// past `last`, the highest seq kefu knows (none on a fresh database). A seq at or below
/// `last` is a redelivery and passes (its event is a duplicate). `Err` says why not.
pub fn check_seq(seq: u64, last: Option<u64>) -> Result<(), String> {
    if seq == 0 {
        return Err("seq 0: seqs start at 1".into());
    }
    if seq > MAX_SEQ {
        return Err(format!("seq {seq} is above the largest seq kefu takes ({MAX_SEQ})"));
    }
    match last {
        Some(last) if seq > last.saturating_add(MAX_SEQ_STEP) => {
            Err(format!("seq {seq} jumps more than {MAX_SEQ_STEP} past the last seq {last}"))
        }
        _ => Ok(()),
    }
}

/// Applies [`check_seq`] to a connection's frames in arrival order: a frame whose seq
/// breaks the rule becomes a rejected frame that keeps its seq but is not ackable, so it
/// can never become the resume point. A pure value, one per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqGuard {
    last: Option<u64>,
}

impl SeqGuard {
    /// A guard for a connection that resumed after `resume_after`.
    pub fn new(resume_after: Option<u64>) -> Self {
        Self { last: resume_after }
    }

    /// The highest seq taken so far.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Checks the seq of `incoming`, decoded from `text`.
    pub fn admit(&mut self, incoming: Incoming, text: &str) -> Incoming {
        let seq = match &incoming {
            Incoming::Event { seq, .. } => *seq,
            Incoming::Rejected(r) => match r.ack_seq() {
                Some(seq) => seq,
                None => return incoming,
            },
            Incoming::Other(_) => return incoming,
        };
        match check_seq(seq, self.last) {
            Ok(()) => {
                self.last = self.last.max(Some(seq));
                incoming
            }
            Err(why) => {
                let reason = match incoming {
                    Incoming::Rejected(r) => format!("{why}; {}", r.reason),
                    _ => why,
                };
                let raw = truncate(text, KEEP_REJECTED_BYTES).to_string();
                Incoming::Rejected(RejectedFrame { seq: Some(seq), ackable: false, reason, raw })
            }
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Finds `"seq": <digits>` near the start of a frame that could not be parsed, so a
/// broken or oversized frame can still be acked.
pub fn sniff_seq(text: &str) -> Option<u64> {
    let head = truncate(text, 256);
    let at = head.find("\"seq\"")? + 5;
    let rest = head[at..].trim_start().strip_prefix(':')?.trim_start();
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    digits.parse().ok()
}

/// The frame a platform sends for one event.
pub fn event_frame(seq: u64, event_json: &str) -> String {
    format!(r#"{{"op":"event","seq":{seq},"event":{event_json}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EV: &str =
        r#"{"type":"close","id":"x1","ts":"2026-11-11T10:00:00Z","shop":"s","conversation":"c"}"#;

    #[test]
    fn decodes_events_and_rejects_the_rest_with_their_seq() {
        let Incoming::Event { seq, event, body } = decode(&event_frame(7, EV)) else {
            panic!("not an event")
        };
        assert_eq!((seq, event.id.as_str(), body.as_str()), (7, "x1", EV));
        // Other spacing and key order take the general path to the same event.
        let spaced = format!(r#"{{ "seq": 7, "event": {EV}, "op": "event" }}"#);
        let Incoming::Event { seq, event: same, .. } = decode(&spaced) else { panic!("not an event") };
        assert_eq!((seq, same), (7, event));
        let cases: &[(&str, Option<u64>, &str)] = &[
            (r#"{"op":"event","seq":9,"event":{"type":"#, Some(9), "not JSON"),
            ("garbage", None, "not JSON"),
            (r#"{"op":"event","seq":3,"event":{"type":"close","id":"x"}}"#, Some(3), "missing field `ts`"),
            (
                r#"{"op":"event","seq":3,"event":{"type":"close","id":"x"},"x":1}"#,
                Some(3),
                "missing field `ts`",
            ),
            (r#"{"op":"event","event":{}}"#, None, "numeric `seq`"),
            (r#"{"seq":4}"#, None, "no `op`"),
        ];
        for &(frame, seq, reason) in cases {
            let Incoming::Rejected(r) = decode(frame) else { panic!("{frame}: not rejected") };
            assert_eq!(r.seq, seq, "{frame}");
            assert!(r.reason.contains(reason), "{frame}: {}", r.reason);
        }
        assert_eq!(decode(r#"{"op":"pong"}"#), Incoming::Other(serde_json::json!({"op": "pong"})));
    }

    #[test]
    fn the_seq_rule() {
        // (seq, last, accepted)
        let cases = [
            (1, None, true),
            (0, None, false),
            (MAX_SEQ, None, true),
            (MAX_SEQ + 1, None, false),
            (u64::MAX, None, false),
            (u64::MAX, Some(5), false),
            (5, Some(5), true),
            (3, Some(5), true),
            (5 + MAX_SEQ_STEP, Some(5), true),
            (6 + MAX_SEQ_STEP, Some(5), false),
            (MAX_SEQ, Some(MAX_SEQ - 1), true),
        ];
        for (seq, last, ok) in cases {
            assert_eq!(
                check_seq(seq, last).is_ok(),
                ok,
                "seq {seq} after {last:?}: {:?}",
                check_seq(seq, last)
            );
        }
    }

    #[test]
    fn a_seq_breaking_the_rule_is_kept_but_never_acked_and_does_not_move_the_guard() {
        let mut guard = SeqGuard::new(Some(10));
        let frame = |seq: u64| event_frame(seq, EV);
        let admit = |g: &mut SeqGuard, text: &str| g.admit(decode(text), text);
        assert!(matches!(admit(&mut guard, &frame(11)), Incoming::Event { seq: 11, .. }));
        let huge = frame(u64::MAX);
        let Incoming::Rejected(r) = admit(&mut guard, &huge) else { panic!("u64::MAX taken") };
        assert_eq!((r.seq, r.ack_seq(), r.raw.as_str()), (Some(u64::MAX), None, huge.as_str()));
        assert!(r.reason.contains("18446744073709551615"), "{}", r.reason);
        assert_eq!(guard.last(), Some(11), "the bad seq is not the last one");
        assert!(matches!(admit(&mut guard, &frame(12)), Incoming::Event { seq: 12, .. }));
        // An invalid event with a bad seq: both reasons, not ackable.
        let bad = r#"{"op":"event","seq":0,"event":{"type":"close","id":"x"}}"#;
        let Incoming::Rejected(r) = admit(&mut guard, bad) else { panic!("not rejected") };
        assert_eq!(r.ack_seq(), None);
        assert!(r.reason.contains("seq 0") && r.reason.contains("missing field"), "{}", r.reason);
        // An invalid event with a good seq stays ackable and moves the guard.
        let bad = r#"{"op":"event","seq":13,"event":{"type":"close","id":"x"}}"#;
        let Incoming::Rejected(r) = admit(&mut guard, bad) else { panic!("not rejected") };
        assert_eq!(r.ack_seq(), Some(13));
        assert_eq!(guard.last(), Some(13));
    }

    #[test]
    fn oversized_frames_are_rejected_with_their_seq_and_cut() {
        let big = event_frame(12, &format!(r#"{{"type":"close","pad":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES)));
        let Incoming::Rejected(r) = decode(&big) else { panic!("not rejected") };
        assert_eq!(r.seq, Some(12));
        assert!(r.reason.contains("limit"), "{}", r.reason);
        assert_eq!(r.raw.len(), KEEP_REJECTED_BYTES);
    }

    #[test]
    fn client_frames_have_the_documented_shape() {
        let hello = ClientFrame::Hello { client: "kefu/0.1.0".into(), resume_after: None };
        assert_eq!(hello.to_text(), r#"{"op":"hello","client":"kefu/0.1.0","resume_after":null}"#);
        assert_eq!(ClientFrame::Ack { seq: 5 }.to_text(), r#"{"op":"ack","seq":5}"#);
        let send = ClientFrame::Send {
            id: "k1".into(),
            conversation: "c".into(),
            text: "亲".into(),
            sender: "bot".into(),
        };
        assert_eq!(send.to_text(), r#"{"op":"send","id":"k1","conversation":"c","text":"亲","as":"bot"}"#);
        assert_eq!(serde_json::from_str::<ClientFrame>(&send.to_text()).unwrap(), send);
    }
}

//! The phrase guard: banned phrases, evasions and personal data in chat messages.
//!
//! Pure: [`Guard::check_event`] takes a message event and returns its [`Flag`]s; storing
//! them ([`store`]) and alerting on `critical` ones ([`Flag::alert`]) happen at the edges.
//!
//! - [`normalize`]: folding evasions onto one form, with the map back to original characters;
//! - [`matcher`]: Aho–Corasick over normalised text, regexes, per-category exceptions;
//! - [`pii`]: mobile, ID card, bank card, e-mail, WeChat id; masking;
//! - [`rules`]: the rule files (`rules/guard.toml`, `guard_variants.toml`, `guard_t2s.txt`);
//! - [`store`]: the `flags` table; [`cli`]: `kefu check-text`, `kefu flags`.

pub mod cli;
pub mod matcher;
pub mod normalize;
pub mod pii;
pub mod rules;
pub mod store;

use std::cell::RefCell;
use std::path::Path;

use serde::Serialize;

use crate::event::{Event, EventKind, Sender};
use crate::rules::DataError;
use crate::time::Millis;
use matcher::{Matcher, RuleRef};
use normalize::{Normalized, Normalizer};
use pii::{PiiHit, PiiKind, PiiScanner};
pub use rules::Severity;
use rules::{CategoryRule, GuardRules};

/// The compiled guard: normaliser, matcher and privacy scanner for one rule set.
#[derive(Debug, Clone)]
pub struct Guard {
    categories: Vec<CategoryRule>,
    normalizer: Normalizer,
    matcher: Matcher,
    pii: PiiScanner,
    /// Senders at least one category watches; other messages are skipped unread.
    watched: Vec<Sender>,
    /// Whether any category is a privacy category.
    has_pii: bool,
    /// Whether the shortcuts are on (off only in [`Guard::without_fast_paths`]).
    fast: bool,
}

/// What a text triggers, for `kefu check-text` and as the source of every [`Flag`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Category name.
    pub category: String,
    /// Its severity.
    pub severity: Severity,
    /// Points per finding (0 or negative).
    pub points: i32,
    /// Who the category watches.
    pub senders: Vec<Sender>,
    /// Why it fired: `phrase 加微信`, `regex …`, `pii mobile`.
    pub rule: String,
    /// The original text of the span, personal data masked.
    pub matched: String,
    /// The span's normalised form (what the rule saw), personal data masked.
    pub normalized: String,
    /// First character of the span in the original text.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// The personal-data kind, for privacy findings.
    pub pii: Option<PiiKind>,
}

/// One finding in one message: what the replay report lists and the store keeps.
///
/// Serialises to exactly `{message_id, agent, category, severity, points, matched, start, end}`;
/// the other fields are for the store and alerts. `matched` is masked when it is personal
/// data; the raw text is read from the message only when storing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// The message's event id.
    pub message_id: String,
    /// The agent the conversation is assigned to (the sender, for agent messages).
    pub agent: String,
    /// Category name.
    pub category: String,
    /// Severity.
    pub severity: Severity,
    /// Points (0 or negative).
    pub points: i32,
    /// The matched original text, masked when it is personal data.
    pub matched: String,
    /// First character of the span in the message text.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// Message time.
    #[serde(skip)]
    pub ts: Millis,
    /// Shop.
    #[serde(skip)]
    pub shop: String,
    /// Conversation.
    #[serde(skip)]
    pub conversation: String,
    /// The personal-data kind, when `matched` is masked personal data.
    #[serde(skip)]
    pub pii: Option<PiiKind>,
}

/// What a live alert for a `critical` flag needs; nothing in it is unmasked personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardAlert {
    /// Shop.
    pub shop: String,
    /// Conversation.
    pub conversation: String,
    /// Agent.
    pub agent: String,
    /// Message id.
    pub message_id: String,
    /// Message time.
    pub ts: Millis,
    /// Category name.
    pub category: String,
    /// Severity (always `critical` today).
    pub severity: Severity,
    /// Matched text, personal data masked.
    pub matched: String,
}

impl Flag {
    /// The alert to raise for this flag, if its severity calls for one.
    pub fn alert(&self) -> Option<GuardAlert> {
        (self.severity == Severity::Critical).then(|| GuardAlert {
            shop: self.shop.clone(),
            conversation: self.conversation.clone(),
            agent: self.agent.clone(),
            message_id: self.message_id.clone(),
            ts: self.ts,
            category: self.category.clone(),
            severity: self.severity,
            matched: self.matched.clone(),
        })
    }
}

/// Building the guard failed after its files parsed.
fn build_error(e: impl std::fmt::Display) -> Vec<DataError> {
    vec![DataError::at("<guard>", None, e.to_string())]
}

impl Guard {
    /// Loads the rule files from `rules_dir` (or the embedded defaults) and compiles them.
    pub fn load(rules_dir: Option<&Path>) -> Result<Self, Vec<DataError>> {
        Self::from_rules(rules::load(rules_dir)?)
    }

    /// Compiles already-validated rules.
    pub fn from_rules(rules: GuardRules) -> Result<Self, Vec<DataError>> {
        let pii = PiiScanner::new(&rules.wechat_cues, &rules.number_cues).map_err(build_error)?;
        let mut watched: Vec<Sender> = Vec::new();
        for s in rules.categories.iter().flat_map(|c| &c.senders) {
            if !watched.contains(s) {
                watched.push(*s);
            }
        }
        let has_pii = rules.categories.iter().any(|c| c.pii.is_some());
        let mut cues: Vec<String> = rules
            .wechat_cues
            .iter()
            .map(|c| rules.normalizer.canonical(c))
            .filter(|c| !c.is_empty())
            .collect();
        cues.sort_by_key(String::len);
        let mut wechat_cues: Vec<String> = Vec::new();
        for c in cues {
            if !wechat_cues.iter().any(|k| c.contains(k.as_str())) {
                wechat_cues.push(c);
            }
        }
        let matcher = Matcher::with_cues(&rules.categories, &wechat_cues).map_err(build_error)?;
        Ok(Self {
            categories: rules.categories,
            normalizer: rules.normalizer,
            matcher,
            pii,
            watched,
            has_pii,
            fast: true,
        })
    }

    /// The flags of a message event, for the categories that watch its sender; none for
    /// other events.
    pub fn check_event(&self, event: &Event) -> Vec<Flag> {
        let EventKind::Message { conversation, agent, from, text, .. } = &event.kind else {
            return Vec::new();
        };
        if !self.watched.contains(from) {
            return Vec::new();
        }
        self.found(text, Some(*from), false)
            .into_iter()
            .map(|f| {
                let c = &self.categories[f.category];
                Flag {
                    message_id: event.id.clone(),
                    agent: agent.clone(),
                    category: c.name.clone(),
                    severity: c.severity,
                    points: c.points,
                    matched: f.matched,
                    start: f.start,
                    end: f.end,
                    ts: event.ts,
                    shop: event.shop.clone(),
                    conversation: conversation.clone(),
                    pii: f.pii,
                }
            })
            .collect()
    }

    /// Everything `text` triggers in any category, whoever the category watches.
    pub fn check_text(&self, text: &str) -> Vec<Finding> {
        self.found(text, None, true)
            .into_iter()
            .map(|f| {
                let c = &self.categories[f.category];
                let rule = match (f.rule, f.pii) {
                    (_, Some(kind)) => format!("pii {}", kind.as_str()),
                    (Some(RuleRef::Phrase(i)), None) => format!("phrase {}", c.phrases[i].0),
                    (Some(RuleRef::Regex(i)), None) => format!("regex {}", c.regexes[i].as_str()),
                    (None, None) => String::new(),
                };
                Finding {
                    category: c.name.clone(),
                    severity: c.severity,
                    points: c.points,
                    senders: c.senders.clone(),
                    rule,
                    normalized: f.normalized.unwrap_or_else(|| f.matched.clone()),
                    matched: f.matched,
                    start: f.start,
                    end: f.end,
                    pii: f.pii,
                }
            })
            .collect()
    }

    /// `text` normalised as the matcher sees it, with characters that come from personal
    /// data shown as `*`.
    pub fn normalized(&self, text: &str) -> String {
        let norm = self.normalizer.normalize(text);
        let pii = self.pii.scan(text);
        norm.chars
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let o = norm.origin_of(i);
                if pii.iter().any(|p| p.start <= o && o < p.end) { '*' } else { c }
            })
            .collect()
    }

    /// `text` with every piece of personal data masked, for logs and displays.
    pub fn mask(&self, text: &str) -> String {
        self.pii.mask_text(text)
    }

    /// The same guard without the shortcuts that skip work on messages that cannot match
    /// (regex literal gates, personal-data pre-checks): slower, and the reference the tests
    /// hold the fast guard to — both must find exactly the same.
    pub fn without_fast_paths(mut self) -> Self {
        self.matcher = self.matcher.without_gates();
        self.fast = false;
        self
    }

    /// What `text` triggers for a message from `sender` (any sender: `None`), by position;
    /// with `detail`, each hit also carries the normalised text the rule saw.
    fn found(&self, text: &str, sender: Option<Sender>, detail: bool) -> Vec<Found> {
        thread_local! {
            /// The first, map-less normalisation of each message, reused across messages.
            static SCRATCH: RefCell<Normalized> = RefCell::new(Normalized::default());
            /// The normalisation with the map, for messages with a hit, reused likewise.
            static MAPPED: RefCell<Normalized> = RefCell::new(Normalized::default());
        }
        let enabled = |ci: usize| sender.is_none_or(|s| self.categories[ci].senders.contains(&s));
        let (hits, pii) = SCRATCH.with_borrow_mut(|norm| {
            self.normalizer.normalize_text_into(text, norm);
            let (hits, cue) = self.matcher.find_with_cue(&norm.chars, enabled);
            // Personal data is looked for whenever there is a hit too, to mask it inside
            // matches; the fast scan skips what the normaliser's counts and the cue words
            // rule out, the reference looks at everything.
            let pii = match (self.has_pii || !hits.is_empty(), self.fast) {
                (false, _) => Vec::new(),
                (true, true) => self.pii.scan_counted(text, norm.digits, norm.at_sign, cue),
                (true, false) => self.pii.scan_all(text),
            };
            (hits, pii)
        });
        let mut out = Vec::new();
        if hits.is_empty() && pii.is_empty() {
            return out;
        }
        if !hits.is_empty() {
            // The same text again, now with the map from normalised to original characters
            // (only messages with a hit get here).
            MAPPED.with_borrow_mut(|norm| {
                self.normalizer.normalize_into(text, norm);
                for h in &hits {
                    let (start, end) = norm.original_span(h.start, h.end);
                    let overlaps = pii.iter().any(|p| p.start < end && start < p.end);
                    let normalized = detail.then(|| {
                        let seen = norm.chars.get(h.start..h.end).unwrap_or_default().iter();
                        seen.map(|&c| if overlaps && c.is_ascii_alphanumeric() { '*' } else { c }).collect()
                    });
                    out.push(Found {
                        category: h.category,
                        rule: Some(h.rule),
                        matched: masked_slice(text, start, end, &pii),
                        normalized,
                        start,
                        end,
                        pii: None,
                    });
                }
            });
        }
        for p in &pii {
            let Some(ci) = self.categories.iter().position(|c| c.pii == Some(p.kind)) else { continue };
            if !enabled(ci) {
                continue;
            }
            out.push(Found {
                category: ci,
                rule: None,
                matched: p.masked.clone(),
                normalized: None,
                start: p.start,
                end: p.end,
                pii: Some(p.kind),
            });
        }
        let name = |f: &Found| self.categories[f.category].name.as_str();
        out.sort_by(|a, b| (a.start, a.end, name(a)).cmp(&(b.start, b.end, name(b))));
        out
    }
}

/// One finding before it is dressed for its reader ([`Finding`] for `check-text`, [`Flag`]
/// for the store and alerts), so the flags of live messages build no text they do not keep.
struct Found {
    category: usize,
    /// The phrase or regex that fired; `None` for personal data.
    rule: Option<RuleRef>,
    /// The original text of the span, personal data masked.
    matched: String,
    /// The normalised text the rule saw, personal data masked (when asked for).
    normalized: Option<String>,
    start: usize,
    end: usize,
    pii: Option<PiiKind>,
}

/// The original characters `[start, end)` of `text`, with any personal data inside shown as `*`.
fn masked_slice(text: &str, start: usize, end: usize, pii: &[PiiHit]) -> String {
    let inside = |i: usize| pii.iter().any(|p| p.start <= i && i < p.end);
    text.chars()
        .enumerate()
        .skip(start)
        .take(end.saturating_sub(start))
        .map(|(i, c)| if inside(i) { '*' } else { c })
        .collect()
}

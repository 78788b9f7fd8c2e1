//! What the runtime hands to whoever delivers alerts, through one seam ([`AlertSeam`]).
//!
//! The runtime decides *that* an alert is due and records it once (the `alerts` table key
//! is the dedup); the seam only delivers, and must not block: processing never waits on
//! a webhook.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::privacy::mask_id;
use crate::time::{Millis, display_shanghai};

/// Which alert of a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// The wait passed its deadline.
    Breach,
}

impl AlertKind {
    /// The name in the `alerts` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Breach => "breach",
        }
    }
}

/// One alert about one buyer's wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Kind.
    pub kind: AlertKind,
    /// Shop id.
    pub shop: Arc<str>,
    /// Conversation id.
    pub conversation: Arc<str>,
    /// Buyer id (raw; mask it for people with [`mask_id`]).
    pub customer: Arc<str>,
    /// The agent who owes the answer.
    pub agent: Arc<str>,
    /// When the buyer started waiting, UTC ms.
    pub wait_start: Millis,
    /// When the alert fell due, UTC ms.
    pub due_at: Millis,
    /// The deadline, ms.
    pub deadline_ms: i64,
    /// The agent's load when the wait started.
    pub load: u32,
    /// The buyer's last message, cut short.
    pub preview: Option<Arc<str>>,
}

impl Alert {
    /// One line for a terminal or a log, buyer masked, times in Asia/Shanghai.
    pub fn line(&self, now: Millis) -> String {
        format!(
            "{} BREACH {} · buyer {} waiting {:.0}s (deadline {}s, load {}) · {} · \"{}\"",
            display_shanghai(self.due_at),
            self.agent,
            mask_id(&self.customer),
            (now - self.wait_start) as f64 / 1000.0,
            self.deadline_ms / 1000,
            self.load,
            self.conversation,
            self.preview.as_deref().unwrap_or("")
        )
    }
}

/// Delivers alerts. `submit` must return at once (queue, print or drop into a channel).
pub trait AlertSeam: Send {
    /// Hands one alert over; `now` is the engine time it left the runtime.
    fn submit(&mut self, alert: Alert, now: Millis);
}

/// Prints each alert as one line on stdout (the seam before the alert service exists,
/// and `kefu demo`'s view).
#[derive(Debug, Default)]
pub struct TerminalSeam;

impl AlertSeam for TerminalSeam {
    fn submit(&mut self, alert: Alert, now: Millis) {
        println!("{}", alert.line(now));
    }
}

/// Sends each alert with the instant it left, for tests, benchmarks and the demo.
#[derive(Debug, Clone)]
pub struct ChannelSeam(pub mpsc::UnboundedSender<(Alert, Instant)>);

impl ChannelSeam {
    /// The seam and the receiving end.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<(Alert, Instant)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }
}

impl AlertSeam for ChannelSeam {
    fn submit(&mut self, alert: Alert, _now: Millis) {
        let _ = self.0.send((alert, Instant::now()));
    }
}

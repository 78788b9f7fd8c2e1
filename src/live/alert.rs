//! The one seam alerts leave kefu through ([`AlertSeam`]).
//!
//! The runtime decides *that* an alert is due and records it once (the `alerts` table key
//! is the dedup); the seam only hands it on and must not block: processing never waits on
//! a webhook. In production the seam is the alert service ([`AlertHandle`]: outbox, sinks,
//! rate limits, retries); tests and benchmarks use [`ChannelSeam`].

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::alerts::format::{Message, terminal_line};
use crate::alerts::{AlertHandle, Notice, Submitter};

/// Delivers alerts. `submit` must return at once.
pub trait AlertSeam: Send {
    /// Hands one alert over.
    fn submit(&mut self, notice: Notice);
}

impl AlertSeam for AlertHandle {
    fn submit(&mut self, notice: Notice) {
        AlertHandle::submit(self, notice);
    }
}

impl AlertSeam for Submitter {
    fn submit(&mut self, notice: Notice) {
        Submitter::submit(self, notice);
    }
}

/// Prints each alert as one line on stdout, buyer masked, platform text escaped (no ESC
/// sequence or line break reaches the terminal); a closed pipe ends the demo quietly.
#[derive(Debug, Default)]
pub struct TerminalSeam;

impl AlertSeam for TerminalSeam {
    fn submit(&mut self, notice: Notice) {
        let line = terminal_line(Message::One(&notice));
        crate::textio::out::print_line_or_exit(&crate::textio::escape_cut(&line, TERMINAL_LINE_MAX_CHARS));
    }
}

/// An alert line carries a message preview: longer than a table cell, still bounded.
const TERMINAL_LINE_MAX_CHARS: usize = 1_000;

/// Sends each alert with the instant it left kefu (tests, benchmarks).
#[derive(Debug, Clone)]
pub struct ChannelSeam(pub mpsc::UnboundedSender<(Notice, Instant)>);

impl ChannelSeam {
    /// The seam and the receiving end.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<(Notice, Instant)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }
}

impl AlertSeam for ChannelSeam {
    fn submit(&mut self, notice: Notice) {
        let _ = self.0.send((notice, Instant::now()));
    }
}

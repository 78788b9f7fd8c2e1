//! Hot reload of `replies/` and `rules/`: a new set is swapped in only when every file
//! validates; an invalid edit is reported with file, line and reason, and the previous
//! set keeps serving.
//!
//! Polling is used rather than OS file events: the folders hold a handful of small
//! files, and a poll every second or two behaves the same on every platform and editor
//! (editors that save by rename confuse watchers). SIGHUP asks for a poll at once.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Replies;
use crate::rules::DataError;

/// What a poll found.
#[derive(Debug)]
pub enum Reload {
    /// No file changed since the last poll.
    Unchanged,
    /// Files changed and all validate: the new set.
    Loaded(Box<Replies>),
    /// Files changed and something is invalid; keep serving the previous set.
    Rejected(Vec<DataError>),
}

/// Watches the two folders by content fingerprint.
#[derive(Debug)]
pub struct Watcher {
    rules: Option<PathBuf>,
    replies: Option<PathBuf>,
    stamp: u64,
}

impl Watcher {
    /// Starts watching; the current contents count as seen (the caller loaded them).
    pub fn new(rules: Option<PathBuf>, replies: Option<PathBuf>) -> Self {
        let stamp = fingerprint(&[rules.as_deref(), replies.as_deref()]);
        Self { rules, replies, stamp }
    }

    /// Looks at the folders once. A rejected edit is reported once, not on every poll.
    pub fn poll(&mut self) -> Reload {
        let stamp = fingerprint(&[self.rules.as_deref(), self.replies.as_deref()]);
        if stamp == self.stamp {
            return Reload::Unchanged;
        }
        self.stamp = stamp;
        match super::load(self.rules.as_deref(), self.replies.as_deref()) {
            Ok(r) => Reload::Loaded(Box::new(r)),
            Err(e) => Reload::Rejected(e),
        }
    }

    /// Polls every `every` (and on SIGHUP) until every receiver of `tx` is gone, publishing
    /// each valid new set; rejected edits are logged with file, line and reason.
    pub async fn run(mut self, every: Duration, tx: watch::Sender<Arc<Replies>>) {
        let mut trigger = Trigger::new(every);
        while trigger.next(tx.closed()).await {
            match self.poll() {
                Reload::Unchanged => {}
                Reload::Loaded(r) => {
                    tracing::info!(
                        rules = r.auto.rules().len(),
                        phrases = r.quick.phrases().len(),
                        "replies reloaded"
                    );
                    tx.send_replace(Arc::new(*r));
                }
                Reload::Rejected(errors) => log_rejected(&errors, "previous replies kept"),
            }
        }
    }
}

/// When to look at the folders again: every `every`, and at once on SIGHUP (unix).
pub struct Trigger {
    tick: tokio::time::Interval,
    nudge: Option<Arc<tokio::sync::Notify>>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Trigger {
    /// Ticks every `every`; a missed tick is delayed, not bunched.
    pub fn new(every: Duration) -> Self {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            tick,
            nudge: None,
            #[cfg(unix)]
            hup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    /// Also checks at once when `nudge` is notified (the console after it wrote a file).
    pub fn nudged_by(mut self, nudge: Arc<tokio::sync::Notify>) -> Self {
        self.nudge = Some(nudge);
        self
    }

    /// Waits for the next check; false once `closed` completes (nobody listens any more).
    pub async fn next(&mut self, closed: impl std::future::Future<Output = ()>) -> bool {
        let nudge = self.nudge.clone();
        let nudged = async move {
            match nudge {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        {
            let hup = &mut self.hup;
            tokio::select! {
                _ = self.tick.tick() => true,
                () = nudged => true,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                    tracing::info!("SIGHUP: checking rules and replies");
                    true
                }
                () = closed => false,
            }
        }
        #[cfg(not(unix))]
        tokio::select! {
            _ = self.tick.tick() => true,
            () = nudged => true,
            () = closed => false,
        }
    }
}

/// Logs every error of a rejected edit with its file, line and reason.
pub fn log_rejected(errors: &[crate::rules::DataError], kept: &str) {
    for e in errors {
        tracing::warn!(file = %e.file.display(), line = e.line, reason = %e.message, kept, "reload rejected");
    }
}

/// A hash of every regular file's name and contents in the folders (not recursive).
fn fingerprint(dirs: &[Option<&Path>]) -> u64 {
    let mut h = DefaultHasher::new();
    for dir in dirs.iter().flatten() {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        for f in files {
            f.hash(&mut h);
            std::fs::read(&f).unwrap_or_default().hash(&mut h);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_sees_edits_and_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = fingerprint(&[Some(dir.path())]);
        std::fs::write(dir.path().join("x.toml"), "a").unwrap();
        let b = fingerprint(&[Some(dir.path())]);
        std::fs::write(dir.path().join("x.toml"), "b").unwrap();
        let c = fingerprint(&[Some(dir.path())]);
        assert!(a != b && b != c);
        assert_eq!(c, fingerprint(&[Some(dir.path())]));
    }
}

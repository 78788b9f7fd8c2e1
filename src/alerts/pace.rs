//! How fast a sink may be sent to: the token bucket, the retry schedule and the digest
//! decision. Small pure values; the sender only asks them.

use crate::time::Millis;

const UNITS_PER_TOKEN: i64 = 60_000;

/// A token bucket in integer arithmetic: `per_minute` tokens a minute, at most `burst` saved.
///
/// In any window of T ms at most `burst + per_minute * T / 60 000` messages pass, which is
/// how the defaults keep a DingTalk robot under its 20-a-minute limit (15/min + 5 burst).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    per_minute: u32,
    burst: u32,
    /// Tokens × 60 000, so a millisecond adds exactly `per_minute` units.
    units: i64,
    at: Millis,
}

impl TokenBucket {
    /// A full bucket at `now`. `per_minute` and `burst` are at least 1.
    pub fn new(per_minute: u32, burst: u32, now: Millis) -> Self {
        let (per_minute, burst) = (per_minute.max(1), burst.max(1));
        Self { per_minute, burst, units: i64::from(burst) * UNITS_PER_TOKEN, at: now }
    }

    fn refill(&mut self, now: Millis) {
        if now > self.at {
            let cap = i64::from(self.burst) * UNITS_PER_TOKEN;
            self.units = (self.units + (now - self.at) * i64::from(self.per_minute)).min(cap);
            self.at = now;
        }
    }

    /// Whole tokens available at `now`.
    pub fn available(&mut self, now: Millis) -> u32 {
        self.refill(now);
        u32::try_from(self.units / UNITS_PER_TOKEN).unwrap_or(u32::MAX)
    }

    /// Spends `n` tokens (the caller checked [`TokenBucket::available`]).
    pub fn take(&mut self, n: u32, now: Millis) {
        self.refill(now);
        self.units -= i64::from(n) * UNITS_PER_TOKEN;
    }

    /// When the next whole token will be there (`now` if one is).
    pub fn next_token_at(&mut self, now: Millis) -> Millis {
        self.refill(now);
        let missing = UNITS_PER_TOKEN - self.units;
        if missing <= 0 {
            return now;
        }
        let per_ms = i64::from(self.per_minute);
        now + (missing + per_ms - 1) / per_ms
    }
}

/// Retry schedule: `base` doubling up to `max`, giving up after `max_attempts` tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base_ms: i64,
    /// Longest delay.
    pub max_ms: i64,
    /// Tries in all (the first send included) before the alert is marked failed.
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s … capped at 60 s; 6 tries (about a minute of trying).
    fn default() -> Self {
        Self { base_ms: 1_000, max_ms: 60_000, max_attempts: 6 }
    }
}

impl Backoff {
    /// After `attempts` failed tries, the delay before the next one; `None` = give up.
    pub fn after(&self, attempts: u32) -> Option<i64> {
        if attempts == 0 {
            return Some(0);
        }
        if attempts >= self.max_attempts {
            return None;
        }
        let factor = 1i64.checked_shl(attempts - 1).unwrap_or(i64::MAX);
        Some(self.base_ms.saturating_mul(factor).min(self.max_ms))
    }
}

/// How to send `due` alerts with `tokens` available: some one by one, the rest as one digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Alerts sent as individual messages (the oldest first).
    pub singles: usize,
    /// Alerts merged into one digest message after them (0 = no digest).
    pub digested: usize,
}

impl Batch {
    /// Individual messages while tokens last; when they do not, the last token carries a
    /// digest of everything left. Nothing is dropped: with no token, nothing is sent yet.
    pub fn plan(due: usize, tokens: u32) -> Batch {
        let tokens = tokens as usize;
        if due <= tokens {
            return Batch { singles: due, digested: 0 };
        }
        if tokens == 0 {
            return Batch { singles: 0, digested: 0 };
        }
        let singles = tokens - 1;
        let rest = due - singles;
        // A "digest" of one is just a single message.
        if rest == 1 {
            Batch { singles: singles + 1, digested: 0 }
        } else {
            Batch { singles, digested: rest }
        }
    }

    /// Messages this batch spends.
    pub fn messages(&self) -> u32 {
        (self.singles + usize::from(self.digested > 0)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_its_rate_up_to_its_burst() {
        let mut b = TokenBucket::new(15, 5, 0);
        assert_eq!(b.available(0), 5);
        b.take(5, 0);
        // (time, available, next token at)
        let steps =
            [(0, 0, 4_000), (3_999, 0, 4_000), (4_000, 1, 4_000), (8_000, 2, 8_000), (600_000, 5, 600_000)];
        for (t, avail, next) in steps {
            assert_eq!(b.available(t), avail, "t={t}");
            assert_eq!(b.next_token_at(t), next, "t={t}");
        }
    }

    #[test]
    fn bucket_never_lets_more_than_burst_plus_rate_through_a_minute() {
        let mut b = TokenBucket::new(15, 5, 0);
        let mut sent = 0;
        for t in (0..60_000).step_by(100) {
            let n = b.available(t);
            b.take(n, t);
            sent += n;
        }
        assert!(sent <= 20, "{sent}");
        assert_eq!(sent, 19, "5 at once, then one each 4 s");
    }

    #[test]
    fn backoff_schedule() {
        let b = Backoff::default();
        let cases = [
            (0, Some(0)),
            (1, Some(1_000)),
            (2, Some(2_000)),
            (3, Some(4_000)),
            (5, Some(16_000)),
            (6, None),
            (60, None),
        ];
        for (attempts, want) in cases {
            assert_eq!(b.after(attempts), want, "{attempts}");
        }
        let long = Backoff { base_ms: 1_000, max_ms: 60_000, max_attempts: 100 };
        assert_eq!(long.after(7), Some(60_000));
        assert_eq!(long.after(90), Some(60_000), "no overflow");
    }

    #[test]
    fn batches() {
        // (due, tokens, singles, digested)
        let cases = [
            (0, 5, 0, 0),
            (3, 5, 3, 0),
            (5, 5, 5, 0),
            (6, 5, 4, 2),
            (100, 5, 4, 96),
            (100, 1, 0, 100),
            (2, 1, 0, 2),
            (1, 1, 1, 0),
            (7, 0, 0, 0),
        ];
        for (due, tokens, singles, digested) in cases {
            let b = Batch::plan(due, tokens);
            assert_eq!((b.singles, b.digested), (singles, digested), "due {due} tokens {tokens}");
            assert!(b.messages() <= tokens, "due {due} tokens {tokens}");
            assert!(
                b.singles + b.digested == due || tokens == 0,
                "nothing dropped: due {due} tokens {tokens}"
            );
        }
    }
}

//! Which event times the engine believes. Event time decides everything stored, so one
//! event dated an hour ahead would close every open session and breach every wait; such
//! an event is bad input, rejected with its reason before it reaches the engine, and time
//! does not move.
//!
//! - ahead: `ts` more than [`TimeLimits::ahead_ms`] after the wall clock (2 s by default:
//!   a platform's clock and kefu's agree to well under a second);
//! - absurd: `ts` before [`TimeLimits::floor`] (2000-01-01), or more than
//!   [`TimeLimits::behind_ms`] (7 days by default) before the watermark — the latest event
//!   time already accepted. This second test depends on the events alone, so replay and
//!   live reject the same events.

use crate::time::Millis;

/// 2000-01-01T00:00:00Z: no shop's chat is older.
pub const FLOOR_MS: Millis = 946_684_800_000;

/// The limits an event's `ts` must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeLimits {
    /// How far after the wall clock an event may be dated.
    pub ahead_ms: i64,
    /// How far before the watermark an event may be dated.
    pub behind_ms: i64,
    /// No event is dated before this.
    pub floor: Millis,
    /// The stream is *live* while its newest event is at most this much older than the
    /// wall clock when it arrived; only then may the wall clock make alerts fall due.
    /// Catching up on older events (a backlog after an outage), only their times count.
    pub live_lag_ms: i64,
}

impl Default for TimeLimits {
    /// 2 s ahead of the wall clock, 7 days behind the watermark, not before 2000; live
    /// while the newest event is at most 5 s old on arrival.
    fn default() -> Self {
        Self { ahead_ms: 2_000, behind_ms: 7 * 86_400_000, floor: FLOOR_MS, live_lag_ms: 5_000 }
    }
}

/// Whether an event's time is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Believable: process it.
    Accept,
    /// Bad input: store it in `rejected` with this reason; time does not move.
    Reject(String),
}

impl TimeLimits {
    /// Judges an event dated `ts`, received when the wall clock said `wall`, after events
    /// up to `watermark` (`Millis::MIN` before the first).
    #[must_use]
    pub fn admit(&self, ts: Millis, wall: Millis, watermark: Millis) -> Admission {
        if ts > wall.saturating_add(self.ahead_ms) {
            let ahead = ts.saturating_sub(wall);
            return Admission::Reject(format!(
                "event dated {} ahead of the clock (more than {} s allowed)",
                human(ahead),
                self.ahead_ms / 1000
            ));
        }
        if ts < self.floor {
            return Admission::Reject("event dated before 2000-01-01".into());
        }
        if watermark != Millis::MIN && ts < watermark.saturating_sub(self.behind_ms) {
            return Admission::Reject(format!(
                "event dated {} before the latest event (more than {} days allowed)",
                human(watermark.saturating_sub(ts)),
                self.behind_ms / 86_400_000
            ));
        }
        Admission::Accept
    }
}

impl TimeLimits {
    /// Whether a stream whose newest event is dated `watermark` is live at `wall`.
    #[must_use]
    pub fn is_live(&self, watermark: Millis, wall: Millis) -> bool {
        watermark != Millis::MIN && watermark >= wall.saturating_sub(self.live_lag_ms)
    }
}

/// A duration for a reason: `61.5 s`, `3.0 h`, `365.0 d`.
fn human(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 3600.0 {
        format!("{s:.1} s")
    } else if s < 86_400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let l = TimeLimits::default();
        let wall = 1_794_362_400_000;
        let day = 86_400_000;
        let cases: [(Millis, Millis, bool); 9] = [
            (wall, Millis::MIN, true),
            (wall + 2_000, Millis::MIN, true),
            (wall + 2_001, Millis::MIN, false),
            (wall + 60_000, wall, false),
            (253_402_300_799_000, wall, false), // 9999-12-31
            (FLOOR_MS - 1, Millis::MIN, false),
            (wall - 7 * day, wall, true),
            (wall - 7 * day - 1, wall, false),
            (wall - 30 * day, Millis::MIN, true), // an old file replayed from its start
        ];
        for (ts, watermark, ok) in cases {
            assert_eq!(l.admit(ts, wall, watermark) == Admission::Accept, ok, "{ts} {watermark}");
        }
        let Admission::Reject(why) = l.admit(wall + 60_000, wall, wall) else { panic!() };
        assert_eq!(why, "event dated 60.0 s ahead of the clock (more than 2 s allowed)");
    }
}

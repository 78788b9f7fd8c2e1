//! Reconnect delays: exponential from 1 s, doubling to 60 s, with jitter so many bots
//! cut by one platform restart do not reconnect in step. A pure value: the caller
//! supplies the randomness.

use std::time::Duration;

/// The reconnect schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 1 s doubling to 60 s.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(60))
    }
}

impl Backoff {
    /// A schedule starting at `base` and capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max: max.max(base), attempt: 0 }
    }

    /// The delay before the next attempt, given `jitter` in `[0, 1)`: "equal jitter",
    /// between half the step and the whole step, so the delay still grows.
    pub fn delay(&self, jitter: f64) -> Duration {
        let step = self.base.saturating_mul(1u32 << self.attempt.min(20)).min(self.max);
        let half = step / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// The delay for this attempt; the following one will be twice as long (up to the cap).
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let d = self.delay(jitter);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Back to the first step, after a connection that worked.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_to_sixty_with_jitter_within_the_step() {
        let ms = Duration::from_millis;
        // (attempt, jitter, expected delay)
        let cases = [
            (0, 0.0, ms(500)),
            (0, 0.999_999, ms(999)),
            (1, 0.0, ms(1_000)),
            (1, 0.5, ms(1_500)),
            (2, 1.0, ms(4_000)),
            (5, 1.0, ms(32_000)),
            (6, 1.0, ms(60_000)),
            (6, 0.0, ms(30_000)),
            (40, 1.0, ms(60_000)),
        ];
        for (attempt, jitter, want) in cases {
            let b = Backoff { attempt, ..Backoff::default() };
            let got = b.delay(jitter);
            assert!(got.abs_diff(want) < ms(1), "attempt {attempt} jitter {jitter}: {got:?} != {want:?}");
        }
    }

    #[test]
    fn next_delay_advances_and_reset_starts_over() {
        let mut b = Backoff::default();
        let got: Vec<u64> = (0..8).map(|_| b.next_delay(1.0).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60]);
        b.reset();
        assert_eq!(b.next_delay(1.0), Duration::from_secs(1));
    }
}

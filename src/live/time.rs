//! The runtime's notion of "now": the wall clock in production, a scaled clock in the
//! demo (so the simulator's sped-up day fires deadlines on time), tokio's paused clock in
//! tests. Built on `tokio::time::Instant` so `tokio::time::pause()` drives it.

use std::time::Duration;

use tokio::time::Instant;

use crate::time::Millis;

const YEAR_MS: f64 = 365.0 * 86_400_000.0;

/// Maps tokio instants to engine milliseconds: `origin_ms + elapsed × speed`.
#[derive(Debug, Clone, Copy)]
pub struct TimeSource {
    origin: Instant,
    origin_ms: Millis,
    speed: f64,
}

impl TimeSource {
    /// The wall clock (UTC ms now, speed 1).
    pub fn wall() -> Self {
        Self::scaled(crate::time::now_ms(), Instant::now(), 1.0)
    }

    /// Engine time `origin_ms` at `origin`, running `speed` times faster than real time.
    pub fn scaled(origin_ms: Millis, origin: Instant, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 { speed } else { 1.0 };
        Self { origin, origin_ms, speed }
    }

    /// Engine time standing still at `ms` (commands that must see one instant throughout).
    pub fn frozen(ms: Millis) -> Self {
        // A speed this small moves engine time by less than a millisecond in any run.
        Self { origin: Instant::now(), origin_ms: ms, speed: 1e-300 }
    }

    /// Engine milliseconds now.
    pub fn now_ms(&self) -> Millis {
        self.ms_at(Instant::now())
    }

    /// Engine milliseconds at `at`.
    pub fn ms_at(&self, at: Instant) -> Millis {
        let elapsed = at.saturating_duration_since(self.origin);
        self.origin_ms + (elapsed.as_secs_f64() * 1000.0 * self.speed) as Millis
    }

    /// The instant engine time reaches `ms` (never before it).
    pub fn instant_at(&self, ms: Millis) -> Instant {
        // Capped at a year so a far deadline cannot overflow an Instant.
        let ahead = ((ms.saturating_sub(self.origin_ms)).max(0) as f64 / self.speed).min(YEAR_MS);
        self.origin + Duration::from_micros((ahead * 1000.0).ceil() as u64)
    }

    /// How many times faster than real time engine time runs.
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn scaled_time_maps_both_ways() {
        let t0 = Instant::now();
        let ts = TimeSource::scaled(1_000_000, t0, 60.0);
        assert_eq!(ts.now_ms(), 1_000_000);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(ts.now_ms(), 1_060_000);
        let at = ts.instant_at(1_000_001);
        assert!(ts.ms_at(at) >= 1_000_001);
        assert_eq!(ts.instant_at(0), t0);
    }
}

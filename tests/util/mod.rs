//! Shared helpers for the integration tests: real servers on 127.0.0.1:0, real SQLite files.
// Each test crate uses a different part of this module.
#![allow(dead_code)]

pub mod browser;
pub mod http;
pub mod ws;

/// Lets virtual time run in 50 ms steps until `cond` holds (at most `max` virtual time).
pub async fn wait_until(max: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let step = std::time::Duration::from_millis(50);
    let mut waited = std::time::Duration::ZERO;
    while !cond() {
        if waited >= max {
            return false;
        }
        tokio::time::sleep(step).await;
        waited += step;
    }
    true
}
pub mod nats;

//! The engine: pure decisions over the event stream. It takes an event and the time and
//! says what happened; it never reads the clock, sleeps or touches a socket or file, so
//! the same code runs live, in replay and in tests.
//!
//! - [`clock`]: the response clock (buyers' waits against the 20 s / 60 s rule).

pub mod clock;

pub use clock::{Breach, Clock, Outcome, Output, Wait, WaitStart};

//! The simulator: realistic shop traffic for demos, tests and benchmarks.
//!
//! - [`traffic`]: seeded generation of a shop's day as events (JSONL).

pub mod traffic;

pub use traffic::{SimConfig, generate, write_jsonl};

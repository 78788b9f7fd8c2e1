//! The simulator: realistic shop traffic for demos, tests and benchmarks.
//!
//! - [`traffic`]: seeded generation of a shop's day as events (JSONL).
//! - [`server`]: a websocket server playing events over the wire protocol, with faults.

pub mod server;
pub mod shops;
pub mod traffic;

pub use server::{Item, ServerConfig, SimServer};
pub use shops::many_shops;
pub use traffic::{SimConfig, generate, write_jsonl};

//! The connection to the chat platform (effects only; decisions live in the engine).
//!
//! - [`protocol`]: the frames of the wire protocol and their decoding.
//! - [`backoff`]: the reconnect schedule, a pure value.
//! - [`client`]: the websocket client: hello/resume, ack after commit, heartbeat, replies.

pub mod backoff;
pub mod client;
pub mod protocol;

pub use backoff::Backoff;
pub use client::{
    GatewayConfig, GatewayCounters, GatewayError, Link, Outgoing, SendHandle, SendRequest, redact_url, run,
};
pub use protocol::{ClientFrame, Incoming, RejectedFrame, SeqGuard, check_seq};

//! Shared helpers for the integration tests: real servers on 127.0.0.1:0, real SQLite files.
// Each test crate uses a different part of this module.
#![allow(dead_code)]

pub mod browser;
pub mod http;
pub mod ws;

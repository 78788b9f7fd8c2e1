//! Shared test helpers: a real simulator server on 127.0.0.1:0, real SQLite files.

pub mod ws;

#!/usr/bin/env bash
# The project's test command: formatting, lints, then every test.
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo >/dev/null || { echo "cargo is required: install Rust from https://rustup.rs" >&2; exit 1; }
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked

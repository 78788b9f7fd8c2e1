#!/usr/bin/env bash
# Installs the two peers (pyahocorasick from PyPI, mint-filter from npm into the git-ignored
# benches/peer/node_modules) and runs the phrase-guard benchmark beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet 'pyahocorasick==2.3.1'
npm install --silent --no-save --no-package-lock --prefix benches/peer 'mint-filter@4.0.3'
cargo bench --bench guard

#!/usr/bin/env bash
# Installs the peer (pyahocorasick from PyPI) and runs the phrase-guard benchmark beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet 'pyahocorasick==2.3.1'
cargo bench --bench guard

#!/usr/bin/env bash
# Installs what the tests need beyond Rust: Debian's Chromium and ChromeDriver, which the
# console's browser tests drive (tests/console.rs), and a Chinese font so the pages'
# screenshots are legible. Idempotent: does nothing when all are present.
# Called by ./test.sh; run it by hand before a plain `cargo test`.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
    && { [ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || ! command -v apt-get >/dev/null 2>&1; }; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-test-deps: need root or sudo for apt-get" >&2; exit 1; }
    sudo="sudo"
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "install-test-deps: no apt-get; install Chromium and a matching ChromeDriver, put both on the PATH" >&2
    exit 1
}
echo "install-test-deps: installing chromium, chromium-driver and fonts-wqy-zenhei (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-wqy-zenhei >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null

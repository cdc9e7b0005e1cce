#!/usr/bin/env bash
# Benchmarks of the browser package (figures go to docs/benchmarks.md):
#   1. bundle size: gzip -9 of what a browser downloads (the JS glue and
#      entry modules as shipped, and as an app's bundler minifies them,
#      plus the .wasm), against the 25 KB target;
#   2. Node throughput over loopback, N on_token frames (default 1,000,000),
#      this package vs a plain `ws` + JSON.parse + string append client.
# Usage: sdk-wasm/bench/run.sh [frames]   (needs ./build.sh done, npm install)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
[ -f pkg/tokenrelay_wasm_bg.wasm ] || ./build.sh

gz() { gzip -9c "$@" | wc -c; }
js_files=(pkg/index.js pkg/client.js pkg/errors.js pkg/tokenrelay_wasm.js)
js_raw=$(cat "${js_files[@]}" | wc -c)
js_gz=$(cat "${js_files[@]}" | gzip -9c | wc -c)
wasm_raw=$(wc -c < pkg/tokenrelay_wasm_bg.wasm)
wasm_gz=$(gz pkg/tokenrelay_wasm_bg.wasm)
total=$((js_gz + wasm_gz))
echo "== bundle (what a browser downloads)"
printf 'JS glue + entry: %7d bytes raw, %7d gzip -9\n' "$js_raw" "$js_gz"
printf '.wasm          : %7d bytes raw, %7d gzip -9\n' "$wasm_raw" "$wasm_gz"
printf 'total gzip -9  : %7d bytes (%.1f KB; target 25 KB)\n' "$total" "$(echo "$total / 1024" | bc -l)"
# What an app's bundler makes of the JS (one minified ESM file); the .wasm
# is fetched as it is.
node_modules/.bin/esbuild pkg/index.js --bundle --minify --format=esm --log-level=warning \
  --outfile="${TMPDIR:-/tmp}/tokenrelay-bundle.js"
min_gz=$(gz "${TMPDIR:-/tmp}/tokenrelay-bundle.js")
printf 'JS minified (esbuild --bundle --minify): %d gzip -9; with the .wasm: %d bytes (%.1f KB)\n' \
  "$min_gz" "$((min_gz + wasm_gz))" "$(echo "($min_gz + $wasm_gz) / 1024" | bc -l)"

echo "== Node throughput over loopback"
FRAMES="${1:-1000000}" ROUNDS="${ROUNDS:-5}" node bench/throughput.mjs

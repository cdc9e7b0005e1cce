#!/usr/bin/env bash
# The size floor of the browser build: the protocol core alone, behind the
# thinnest binding there can be (core-floor/: raw imports and exports, no
# wasm-bindgen, no JS layer), built with the package's profile settings and
# wasm-opt flags (its export names are not shortened, ~0.2 KB raw). What
# the package weighs above this is its binding and JS; what this weighs is
# the core's own code. docs/benchmarks.md ("The core's floor") records the
# figures and what they mean for issue #13's target. Also runs the module
# through a connect, a streamed reply and a refused key (run.mjs), so the
# figure is that of a working core.
# Usage: sdk-wasm/bench/core-floor.sh   (after npm install in sdk-wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}/core-floor"
( cd "$here/bench/core-floor" && CARGO_TARGET_DIR="$target" \
    cargo build ${CI:+--locked} -q --release --target wasm32-unknown-unknown )
out="$(mktemp -d "${TMPDIR:-/tmp}/tokenrelay-floor.XXXXXX")"
trap 'rm -rf "$out"' EXIT
features="--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue"
# shellcheck disable=SC2086
"$here/node_modules/.bin/wasm-opt" -Oz --converge --strip-producers --strip-debug $features \
  "$target/wasm32-unknown-unknown/release/tokenrelay_core_floor.wasm" -o "$out/floor.wasm"
node "$here/bench/core-floor/run.mjs" "$out/floor.wasm"
raw=$(wc -c < "$out/floor.wasm")
gz=$(gzip -9c "$out/floor.wasm" | wc -c)
printf 'the core alone (.wasm, no binding): %7d B raw, %6d B gzip -9\n' "$raw" "$gz"
printf 'bench-result\tbrowser bundle (sdk-wasm)\tthe core alone, gzip -9\t%d B\t\n' "$gz"

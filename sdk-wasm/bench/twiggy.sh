#!/usr/bin/env bash
# Where the bytes of the .wasm are: builds the module as build.sh does but
# keeps the function names (wasm-bindgen --keep-debug, wasm-opt -g), then
# prints twiggy's views of it. The names section is ~47 KB and is not in
# the shipped module; every other row is (give or take the renumbering
# wasm-opt does with names kept: within 0.1 %).
#   top:        the largest functions and data segments
#   monos:      generic functions and their copies
#   dominators: what each function alone keeps in the module (most code is
#               reached through the indirect-call table: closures handed to
#               JS, `dyn` readers, so the tree is shallow)
# docs/benchmarks.md ("Bundle size") records the breakdown.
# Needs: twiggy (`cargo install twiggy`), and what build.sh needs.
# Usage: sdk-wasm/bench/twiggy.sh [rows]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
rows="${1:-40}"
command -v twiggy >/dev/null || { echo "twiggy.sh: needs twiggy: cargo install twiggy" >&2; exit 1; }

cd "$root"
cargo build ${CI:+--locked} -q -p tokenrelay-wasm --target wasm32-unknown-unknown --profile wasm-release
wasm="${CARGO_TARGET_DIR:-$root/target}/wasm32-unknown-unknown/wasm-release/tokenrelay_wasm.wasm"
out="$(mktemp -d "${TMPDIR:-/tmp}/tokenrelay-twiggy.XXXXXX")"
trap 'rm -rf "$out"' EXIT
wasm-bindgen --target web --no-typescript --keep-debug --out-dir "$out" "$wasm"
"$here/node_modules/.bin/wasm-opt" -Oz --converge -g --enable-bulk-memory \
  --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
  --enable-reference-types --enable-multivalue \
  "$out/tokenrelay_wasm_bg.wasm" -o "$out/named.wasm"

echo "== twiggy top -n $rows"
twiggy top -n "$rows" "$out/named.wasm"
echo "== twiggy monos -m 15 -n 3"
twiggy monos -m 15 -n 3 "$out/named.wasm"
echo "== twiggy dominators -d 3 -r 20"
twiggy dominators -d 3 -r 20 "$out/named.wasm"

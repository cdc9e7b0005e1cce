#!/usr/bin/env bash
# Builds the npm package into sdk-wasm/pkg/:
#   cargo (profile wasm-release: opt-level z, LTO, panic=abort)
#   -> wasm-bindgen --target web (ESM glue, loadable by browsers and Node)
#   -> wasm-opt -Oz --converge (npm `binaryen`; Debian's binaryen emits broken
#      modules), then short import/export names (scripts/minify-names.mjs)
#   + the hand-written ESM entries (js/) and types (index.d.ts)
#   + scripts/finish-pkg.mjs: CommonJS builds, .d.cts types, licenses.
# Needs: rustup target wasm32-unknown-unknown, wasm-bindgen-cli at the
# version of wasm-bindgen in Cargo.lock, `npm install` done here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

cargo build ${CI:+--locked} -p tokenrelay-wasm --target wasm32-unknown-unknown --profile wasm-release
wasm="${CARGO_TARGET_DIR:-$root/target}/wasm32-unknown-unknown/wasm-release/tokenrelay_wasm.wasm"

rm -rf "$here/pkg"
mkdir -p "$here/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$here/pkg" "$wasm"

wasm_opt="$here/node_modules/.bin/wasm-opt"
if [ ! -x "$wasm_opt" ]; then
  echo "build.sh: $wasm_opt missing: run \`npm install\` in sdk-wasm" >&2
  exit 1
fi
# --converge repeats -Oz while it still shrinks; --strip-producers drops the
# toolchain names (together ~0.3 KB gzip).
"$wasm_opt" -Oz --converge --strip-producers --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$here/pkg/tokenrelay_wasm_bg.wasm" -o "$here/pkg/tokenrelay_wasm_bg.wasm"
# Short import, export and module names, in the .wasm and in the glue
# (scripts/minify-names.mjs says why; ~2 KB gzip of hashed names).
mapping="$(mktemp "${TMPDIR:-/tmp}/tokenrelay-names.XXXXXX.json")"
trap 'rm -f "$mapping"' EXIT
"$wasm_opt" --minify-imports-and-exports-and-modules --enable-bulk-memory \
  --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
  --enable-reference-types --enable-multivalue \
  "$here/pkg/tokenrelay_wasm_bg.wasm" -o "$here/pkg/tokenrelay_wasm_bg.wasm" > "$mapping"
node "$here/scripts/minify-names.mjs" "$mapping" "$here/pkg/tokenrelay_wasm.js"

cp "$here"/js/*.js "$here"/js/*.d.ts "$here/pkg/"
# CommonJS builds (node.cjs, server.cjs, react.cjs), .d.cts types, licenses.
node "$here/scripts/finish-pkg.mjs"
echo "built $here/pkg: $(wc -c < "$here/pkg/tokenrelay_wasm_bg.wasm") bytes of wasm"

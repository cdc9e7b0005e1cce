#!/usr/bin/env bash
# Installs what the browser package's suite needs (on a fresh Debian
# machine), builds the package and runs every JS and browser test:
#   apt chromium (if missing), rustup target wasm32-unknown-unknown,
#   wasm-bindgen-cli at the version locked in Cargo.lock (if missing),
#   npm ci in sdk-wasm, the release server binary, ./build.sh, the size
#   check (bench/size.sh: JS minified + .wasm, gzip, against its budgets),
#   the core's floor (bench/core-floor.sh: the core alone, run once),
#   tsc --strict --noEmit on the types, node --test tests/*.test.js, the
#   consumer projects (npm pack, installed as a user would into Node 18/20/22
#   ESM and CJS, esbuild, Vite, webpack, Next.js, Cloudflare Workers, Bun
#   and Deno projects:
#   tests/consumers/run.mjs), then
#   the latency bench's short run on Node and in Chromium (figures printed,
#   never judged; every reply must still arrive whole).
# Exits non-zero on any failure. Run from anywhere: sdk-wasm/test.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
step() { printf '\n== %s\n' "$*"; }

if [ ! -x /usr/bin/chromium ]; then
  step "apt-get install chromium"
  sudo_="";
  [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null
fi

step "rustup target add wasm32-unknown-unknown"
rustup target add wasm32-unknown-unknown

locked="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")"
have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$have" != "$locked" ]; then
  step "cargo install wasm-bindgen-cli $locked (had: ${have:-none})"
  # Its own Cargo.lock first (reproducible); a registry that lacks one of
  # the versions locked there (a mirror: webpki-roots 1.0.11 went missing
  # once) fails that at once, and the same version resolved afresh is
  # the documented way to install it.
  cargo install wasm-bindgen-cli --version "$locked" --locked ||
    cargo install wasm-bindgen-cli --version "$locked"
fi

step "npm ci"
cd "$here"
npm ci --no-audit --no-fund

step "cargo build --release -p tokenrelay-server"
(cd "$root" && cargo build ${CI:+--locked} --release -p tokenrelay-server)

step "build the package"
./build.sh

step "bundle size (bench/size.sh: fails over its budget)"
bench/size.sh

step "the core alone (bench/core-floor.sh: it must build, connect and stream)"
bench/core-floor.sh

step "tsc --strict --noEmit (types)"
node_modules/.bin/tsc -p tests/types/tsconfig.json

step "node --test"
# The server binary the tests start; each test file runs in its own process.
export TOKENRELAY_SERVER_BIN="${CARGO_TARGET_DIR:-$root/target}/release/tokenrelay-server"
node --test --test-reporter=spec --test-concurrency=1 tests/*.test.js

step "consumer projects from the packed tarball (tests/consumers/run.mjs)"
node tests/consumers/run.mjs

step "latency, short (bench/latency.mjs; bench/latency.sh runs every round)"
node bench/latency.mjs --short

#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after another (docs/fuzzing.md).
#   fuzz/run.sh                 each target FUZZ_SECONDS (default 10) seconds
#   fuzz/run.sh session         only the targets named
# New inputs go to fuzz/corpus/<target> (not committed); the committed seeds
# in fuzz/seeds/<target> are read too. A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the run. Installs nightly and
# cargo-fuzz if missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
secs="${FUZZ_SECONDS:-10}"
all=(scan_token decode_serde decode_compact client_frame session rest_bodies)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  # Its own Cargo.lock first; afresh if the registry lacks a locked version.
  cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

# No sanitizer: sdk-core has no `unsafe` (ASan would only slow it down);
# debug assertions on, so an integer overflow panics as in a debug build.
flags=(--sanitizer none --debug-assertions)
# cargo-fuzz has no `--locked`: resolve with the committed fuzz/Cargo.lock
# first, so a lock file that no longer matches the manifests fails here
# instead of being rewritten quietly.
cargo +nightly metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null
cargo +nightly fuzz build "${flags[@]}"
for t in "${targets[@]}"; do
  printf '\n== fuzz %s (%ss)\n' "$t" "$secs"
  mkdir -p "fuzz/corpus/$t"
  dirs=("$root/fuzz/corpus/$t")
  if [ -d "fuzz/seeds/$t" ]; then dirs+=("$root/fuzz/seeds/$t"); fi
  cargo +nightly fuzz run "${flags[@]}" "$t" "${dirs[@]}" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done

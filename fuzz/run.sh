#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after another (docs/fuzzing.md).
#   fuzz/run.sh                 each target FUZZ_SECONDS (default 20) seconds
#   fuzz/run.sh session         only the targets named
# New inputs go to fuzz/corpus/<target> (not committed); the committed seeds
# in fuzz/seeds/<target> are read too. A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the run. Needs nightly and cargo-fuzz
# (.ci/run installs both).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
secs="${FUZZ_SECONDS:-20}"
all=(scan_token decode_serde decode_compact client_frame session rest_bodies)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

cargo +nightly fuzz build
for t in "${targets[@]}"; do
  printf '\n== fuzz %s (%ss)\n' "$t" "$secs"
  mkdir -p "fuzz/corpus/$t"
  cargo +nightly fuzz run "$t" "$root/fuzz/corpus/$t" "$root/fuzz/seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done

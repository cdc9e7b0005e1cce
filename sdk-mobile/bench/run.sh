#!/usr/bin/env bash
# Benchmark of the Kotlin SDK on the JVM (figures go to docs/benchmarks.md):
# N `on_token` frames (default 1,000,000) from the core's loopback bench
# server (sdk-core/benches/loopback.rs --serve N, its own process), received
#   (a) through conn.events() (every token an Event.Token in Kotlin),
#   (b) through conn.ask() (accumulated in Rust, one Response to Kotlin),
# beside the Rust client in the same run (the loopback bench's `events` and
# `ask` client modes against the same server). Each mode runs in its own
# process ROUNDS times (default 3), interleaved; the best run counts.
#
#   sdk-mobile/bench/run.sh [frames]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
frames="${1:-1000000}"
rounds="${ROUNDS:-3}"
kotlin_home="$here/node_modules/kotlin-compiler"
jna=/usr/share/java/jna.jar

TOKENRELAY_MOBILE_FEATURES="${TOKENRELAY_MOBILE_FEATURES:-admin}" bash "$here/build.sh" >&2
(cd "$root" && cargo bench -p tokenrelay --bench loopback --no-run >&2)
loopback="$(ls -t "$target"/release/deps/loopback-* | grep -v '\.d$' | head -1)"

cp="$here/kotlin/build/tokenrelay.jar:$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar:$jna"
"$kotlin_home/bin/kotlinc-jvm" -jvm-target 17 -cp "$cp" -d "$here/kotlin/build/bench.jar" "$here/bench/Bench.kt" >&2
cp="$here/kotlin/build/bench.jar:$cp:$kotlin_home/lib/kotlin-stdlib.jar"

tmp="$(mktemp -d)"
# --bench: without it the server streams a 2,000-frame smoke reply.
"$loopback" --bench --serve "$frames" >"$tmp/url" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -s "$tmp/url" ] && break; sleep 0.1; done
url="$(head -1 "$tmp/url")"

run() { # label command...
  local label="$1"; shift
  "$@" >>"$tmp/$label"
}
for r in $(seq "$rounds"); do
  run kotlin-events java -Xmx512m -Djna.library.path="$target/release" -cp "$cp" dev.tokenrelay.bench.BenchKt events "$url" "$frames"
  run kotlin-ask java -Xmx512m -Djna.library.path="$target/release" -cp "$cp" dev.tokenrelay.bench.BenchKt ask "$url" "$frames"
  run rust-events "$loopback" --mode events "$url" "$frames"
  run rust-ask "$loopback" --mode ask "$url" "$frames"
  echo "round $r done" >&2
done

python3 - "$tmp" "$frames" <<'PY'
import json, sys
tmp, frames = sys.argv[1], int(sys.argv[2])
rows = [("Kotlin `conn.events()` (every token an `Event.Token`)", "kotlin-events"),
        ("Kotlin `conn.ask()` (accumulated in Rust)", "kotlin-ask"),
        ("Rust `conn.next_event()`", "rust-events"),
        ("Rust `conn.ask()`", "rust-ask")]
best = {}
for _, key in rows:
    runs = [json.loads(l) for l in open(f"{tmp}/{key}") if l.strip().startswith("{")]
    best[key] = max(runs, key=lambda r: r["rate"])
    print(key, "runs (M frames/s):", ", ".join(f"{r['rate'] / 1e6:.3f}" for r in runs), file=sys.stderr)
print(f"| client ({frames:,} `on_token` frames) | M frames/s | × Rust same mode | JVM heap peak (MiB) | peak RSS (MiB) |")
print("|---|---:|---:|---:|---:|")
for label, key in rows:
    r = best[key]
    rust = best["rust-" + key.split("-")[1]]["rate"]
    heap = f"{r['heap_peak_mib']:.0f}" if "heap_peak_mib" in r else "—"
    print(f"| {label} | {r['rate'] / 1e6:.3f} | {r['rate'] / rust:.2f}× | {heap} | {r['rss_kib'] / 1024:.0f} |")
# For `cargo xtask bench`: each Kotlin mode beside the Rust client.
for label, key in rows[:2]:
    r, rust = best[key], best["rust-" + key.split("-")[1]]
    print(f"bench-result\tKotlin SDK (JVM)\tframes/s, {label} ({r['rate'] / rust['rate']:.2f}× Rust)"
          f"\t{r['rate'] / 1e6:.3f} M\tRust same mode: {rust['rate'] / 1e6:.3f} M")
PY

#!/usr/bin/env bash
# Latency through the Kotlin SDK on the JVM (issue #11), every round:
# builds the bindings (./build.sh) and the release reference server,
# compiles bench/Latency.kt against them and runs it. `sdk-mobile/test.sh`
# runs the short mode at its end, on its own build (bench/latency.sh
# --no-build --short).
#
#   sdk-mobile/bench/latency.sh [--no-build] [--short]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
build="$here/kotlin/build"
kotlin_home="$here/node_modules/kotlin-compiler"
coroutines="$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar"
jna=/usr/share/java/jna.jar

if [ "${1:-}" = "--no-build" ]; then
  shift
else
  TOKENRELAY_MOBILE_FEATURES="${TOKENRELAY_MOBILE_FEATURES:-admin}" bash "$here/build.sh" >&2
  (cd "$root" && cargo build ${CI:+--locked} --release -q -p tokenrelay-server)
fi

"$kotlin_home/bin/kotlinc-jvm" -jvm-target 17 -cp "$build/tokenrelay.jar:$jna:$coroutines" \
  -d "$build/latency.jar" "$here/bench/Latency.kt" >&2
export TOKENRELAY_SERVER_BIN="$target/release/tokenrelay-server"
exec java -Djna.library.path="$target/release" \
  -cp "$build/latency.jar:$build/tokenrelay.jar:$kotlin_home/lib/kotlin-stdlib.jar:$coroutines:$jna" \
  dev.tokenrelay.bench.LatencyKt "$@"

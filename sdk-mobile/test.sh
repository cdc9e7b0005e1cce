#!/usr/bin/env bash
# The mobile SDKs' whole check, from nothing installed to the Kotlin
# suite's summary line:
#   apt libjna-java (if missing), npm ci (kotlin-compiler: kotlinc-jvm,
#   kotlin-stdlib, kotlinx-coroutines), the release server, ./build.sh (the
#   release cdylib, uniffi-bindgen (its own crate) in the dev profile,
#   Kotlin and Swift bindings generated from the library, kotlinc of the
#   bindings + the Kotlin layer), kotlinc of the test suite, the Kotlin CLI
#   example end to end, a consumer of the JVM artifact (jar + pom) alone,
#   a parse of every .swift file, the Swift name check (generated vs
#   hand-written), the Swift release script on a dummy zip (tree-sitter-swift: no
#   Swift toolchain exists here), then the Kotlin suite on the JVM against
#   the real reference server, then the latency bench's short run
#   (bench/Latency.kt: figures printed, never judged; every reply must
#   still arrive whole).
# Exits non-zero on any failure. Run from anywhere: sdk-mobile/test.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
build="$here/kotlin/build"
step() { printf '\n== %s\n' "$*"; }

sudo_=""
[ "$(id -u)" -ne 0 ] && sudo_="sudo"
if [ ! -f /usr/share/java/jna.jar ]; then
  step "apt-get install libjna-java"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq libjna-java >/dev/null
fi
command -v java >/dev/null || { echo "a JDK (17+) is required: apt-get install -y openjdk-17-jdk-headless" >&2; exit 1; }

step "npm ci (kotlin-compiler)"
(cd "$here" && npm ci --no-audit --no-fund)
kotlin_home="$here/node_modules/kotlin-compiler"
coroutines="$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar"
jna=/usr/share/java/jna.jar

step "cargo build --release -p tokenrelay-server"
(cd "$root" && cargo build ${CI:+--locked} --release -p tokenrelay-server)

# The suite, the CLI example and the bench play the app's backend with
# AdminClient (feature `admin`); the suite's error-table test needs the
# `testing` hooks. Neither is in the library an app ships.
TOKENRELAY_MOBILE_FEATURES=admin,testing bash "$here/build.sh"

step "kotlinc: test suite -> kotlin/build/tokenrelay-tests.jar"
"$kotlin_home/bin/kotlinc-jvm" -jvm-target 17 -cp "$build/tokenrelay.jar:$build/tokenrelay-testing.jar:$jna:$coroutines" \
  -d "$build/tokenrelay-tests.jar" $(find "$here/kotlin/src/test/kotlin" -name '*.kt')

export TOKENRELAY_SERVER_BIN="$target/release/tokenrelay-server"
export TOKENRELAY_REPO="$root"

step "Kotlin CLI example (examples/kotlin-cli) against a local server"
bash "$root/examples/kotlin-cli/run.sh" --check

step "the JVM artifact alone: a consumer compiled and run against the jar + its pom's dependencies"
bash "$here/kotlin/consumer/run.sh"

step "parse every .swift file (tree-sitter-swift)"
bash "$here/swift/check-parse.sh"

step "the generated and the hand-written Swift agree on every shared name (swift/check_names.py)"
bash "$here/swift/check-names.sh"

step "the Swift release script: refuses without macOS, writes the checksum of a dummy zip"
bash "$here/scripts/test-release-swift.sh"

step "Kotlin suite on the JVM against the reference server"
classpath="$build/tokenrelay.jar:$build/tokenrelay-testing.jar:$build/tokenrelay-tests.jar:$kotlin_home/lib/kotlin-stdlib.jar:$coroutines:$jna"
java -Djna.library.path="$target/release" -cp "$classpath" dev.tokenrelay.test.RunnerKt

step "latency, short (bench/Latency.kt; bench/latency.sh runs every round)"
bash "$here/bench/latency.sh" --no-build --short

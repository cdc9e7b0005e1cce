#!/usr/bin/env bash
# Builds what the Kotlin and Swift packages are made of, from the Rust crate:
#   target/release/libtokenrelay_mobile.so          the native library (JNA loads it)
#   kotlin/build/generated/dev/tokenrelay/*.kt      uniffi's Kotlin bindings
#   kotlin/build/tokenrelay.jar                     bindings + kotlin/src/main, compiled
#   kotlin/build/tokenrelay-testing.jar             kotlin/testing: the reference server in JVM tests
#   kotlin/build/maven/dev/tokenrelay/tokenrelay-jvm/VERSION/
#                                                   the JVM artifact: that jar with the
#                                                   linux-x86_64 library inside, and its pom
#   kotlin/build/maven/dev/tokenrelay/tokenrelay-jvm-testing/VERSION/
#                                                   the test helper's jar and pom
#   swift/Sources/TokenRelay/Generated/*.swift      uniffi's Swift bindings
#   swift/build/ffi/                                their C header and module map
# Needs: cargo, java, npm (kotlin-compiler via npm ci), JNA at
# /usr/share/java/jna.jar (Debian libjna-java). test.sh installs these.
# TOKENRELAY_MOBILE_FEATURES (comma-separated cargo features of
# tokenrelay-mobile) adds to what an app ships: `admin` (AdminClient, for
# code that plays the app's backend), `testing` (the Kotlin suite's hooks).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
build="$here/kotlin/build"
step() { printf '\n== %s\n' "$*"; }

if [ ! -x "$here/node_modules/kotlin-compiler/bin/kotlinc-jvm" ]; then
  step "npm ci (kotlin-compiler)"
  (cd "$here" && npm ci --no-audit --no-fund)
fi
kotlin_home="$here/node_modules/kotlin-compiler"

features="${TOKENRELAY_MOBILE_FEATURES:-}"
step "cargo build --release -p tokenrelay-mobile (the cdylib; features: ${features:-none})"
(cd "$root" && cargo build ${CI:+--locked} --release -p tokenrelay-mobile --lib --features "$features")
lib="$target/release/libtokenrelay_mobile.so"

step "uniffi-bindgen (its own crate, uniffi-bindgen/, dev profile)"
(cd "$root" && cargo build ${CI:+--locked} -p tokenrelay-uniffi-bindgen)
bindgen="$target/debug/uniffi-bindgen"

step "generate the Kotlin and Swift bindings from the library"
rm -rf "$build/generated"
(cd "$root" && "$bindgen" generate --library "$lib" --language kotlin --out-dir "$build/generated" --no-format)
bash "$here/swift/generate.sh" "$bindgen" "$lib"

step "kotlinc: bindings + Kotlin layer -> kotlin/build/tokenrelay.jar"
"$kotlin_home/bin/kotlinc-jvm" -nowarn -jvm-target 17 \
  -cp "/usr/share/java/jna.jar:$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar" \
  -d "$build/tokenrelay.jar" \
  $(find "$build/generated" "$here/kotlin/src/main/kotlin" -name '*.kt')
ls -l "$build/tokenrelay.jar" "$lib"

step "kotlinc: the test helper (kotlin/testing) -> kotlin/build/tokenrelay-testing.jar"
# Pure JVM (it starts the reference server's binary): no bindings, no JNA.
"$kotlin_home/bin/kotlinc-jvm" -jvm-target 17 -d "$build/tokenrelay-testing.jar" \
  $(find "$here/kotlin/testing/src/main/kotlin" -name '*.kt')

step "the JVM artifacts (jar with the native library inside + pom; the test helper)"
bash "$here/kotlin/jvm-artifact.sh" "$lib"

#!/usr/bin/env bash
# Runs the Kotlin CLI example on the JVM against a local reference server
# (started here on 127.0.0.1:0 with a throwaway store, stopped on exit).
#
#   examples/kotlin-cli/run.sh           # interactive chat
#   examples/kotlin-cli/run.sh --check   # one scripted exchange (test.sh)
#
# Needs sdk-mobile/build.sh done with TOKENRELAY_MOBILE_FEATURES=admin (it
# builds kotlin/build/tokenrelay.jar and the native library; the example
# plays the backend with AdminClient) and the release server (cargo build
# --release -p tokenrelay-server).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
mobile="$root/sdk-mobile"
kotlin_home="$mobile/node_modules/kotlin-compiler"
jar="$mobile/kotlin/build/tokenrelay.jar"
[ -f "$jar" ] || TOKENRELAY_MOBILE_FEATURES=admin bash "$mobile/build.sh"
server="${TOKENRELAY_SERVER_BIN:-$target/release/tokenrelay-server}"
[ -x "$server" ] || (cd "$root" && cargo build --release -p tokenrelay-server)

cp="$jar:$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar:/usr/share/java/jna.jar"
out="$mobile/kotlin/build/kotlin-cli.jar"
"$kotlin_home/bin/kotlinc-jvm" -jvm-target 17 -cp "$cp" -d "$out" "$here/Main.kt"

tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
common=(--db "$tmp/store.sqlite3" --scripted-pace-ms 0)
boot="$(NO_COLOR=1 "$server" "${common[@]}" bootstrap --org-name kotlin-cli 2>"$tmp/boot.log")" || {
  cat "$tmp/boot.log" >&2
  exit 1
}
org_id="$(printf '%s\n' $boot | sed -n 's/^org_id=//p')"
org_key="$(printf '%s\n' $boot | sed -n 's/^org_api_key=//p')"
NO_COLOR=1 TOKENRELAY_LOG=info "$server" "${common[@]}" --bind 127.0.0.1:0 serve 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do grep -q 'ready' "$tmp/log" && break; sleep 0.1; done
http_url="$(sed -n 's/.*ready.*http=\([^ ]*\).*/\1/p' "$tmp/log" | head -1)"
ws_url="$(sed -n 's/.*ready.*ws=\([^ ]*\).*/\1/p' "$tmp/log" | head -1)"
[ -n "$ws_url" ] || { cat "$tmp/log" >&2; exit 1; }

TOKENRELAY_HTTP_URL="$http_url" TOKENRELAY_WS_URL="$ws_url" TOKENRELAY_ORG_ID="$org_id" \
TOKENRELAY_ORG_KEY="$org_key" \
  java -Djna.library.path="$target/release" \
    -cp "$out:$cp:$kotlin_home/lib/kotlin-stdlib.jar" dev.tokenrelay.examples.MainKt "$@"

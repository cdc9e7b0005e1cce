#!/usr/bin/env bash
# Compiles kotlin/consumer/Consumer.kt against the JVM artifact alone and
# runs it against a local reference server: the classpath is the artifact's
# jar plus the jars of the dependencies its pom declares (each checked to be
# the version the pom names), and no -Djna.library.path, so the native
# library can only come from inside the jar. Run by sdk-mobile/test.sh after
# build.sh (which assembles the artifact with kotlin/jvm-artifact.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mobile="$(cd "$here/../.." && pwd)"
root="$(cd "$mobile/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
kotlin_home="$mobile/node_modules/kotlin-compiler"
server="${TOKENRELAY_SERVER_BIN:-$target/release/tokenrelay-server}"

pom="$(ls "$mobile"/kotlin/build/maven/dev/tokenrelay/tokenrelay-jvm/*/tokenrelay-jvm-*.pom)"
jar="${pom%.pom}.jar"
# Read the listing whole (python, not `unzip -l | grep -q`: unzip is not on
# every machine, and under pipefail grep -q's early exit can SIGPIPE unzip).
python3 - "$jar" <<'PY' || { echo "no native library in $jar" >&2; exit 1; }
import sys, zipfile
sys.exit(0 if "linux-x86-64/libtokenrelay_mobile.so" in zipfile.ZipFile(sys.argv[1]).namelist() else 1)
PY

# The pom's dependencies, mapped to the local jars of those exact versions.
declared="$(python3 - "$pom" <<'PY'
import sys, xml.etree.ElementTree as ET
ns = {"m": "http://maven.apache.org/POM/4.0.0"}
for d in ET.parse(sys.argv[1]).getroot().findall("m:dependencies/m:dependency", ns):
    print(d.find("m:artifactId", ns).text, d.find("m:version", ns).text)
PY
)"
manifest_version() { unzip -p "$1" META-INF/MANIFEST.MF | tr -d '\r' | sed -n 's/^Implementation-Version: *\([^ ]*\).*/\1/p' | head -1; }
cp="$jar"
while read -r artifact version; do
  case "$artifact" in
    jna) dep=/usr/share/java/jna.jar; have="$(manifest_version "$dep")" ;;
    kotlin-stdlib) dep="$kotlin_home/lib/kotlin-stdlib.jar"; have="$(manifest_version "$dep")" ;;
    kotlinx-coroutines-core-jvm) dep="$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar"
      have="$(unzip -p "$dep" META-INF/kotlinx_coroutines_core.version | tr -d '\r\n')" ;;
    *) echo "the pom declares $artifact, which this test has no jar for" >&2; exit 1 ;;
  esac
  [ "$have" = "$version" ] || { echo "$artifact: the pom says $version, the local jar is $have" >&2; exit 1; }
  cp="$cp:$dep"
done <<< "$declared"
echo "classpath: the artifact + $(echo "$declared" | tr '\n' ' ')"

out="$mobile/kotlin/build/consumer.jar"
"$kotlin_home/bin/kotlinc-jvm" -jvm-target 17 -cp "$cp" -d "$out" "$here/Consumer.kt"

tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
common=(--db "$tmp/store.sqlite3" --scripted-pace-ms 0)
boot="$(NO_COLOR=1 "$server" "${common[@]}" bootstrap --org-name consumer 2>"$tmp/boot.log")" || { cat "$tmp/boot.log" >&2; exit 1; }
org_id="$(printf '%s\n' $boot | sed -n 's/^org_id=//p')"
org_key="$(printf '%s\n' $boot | sed -n 's/^org_api_key=//p')"
NO_COLOR=1 TOKENRELAY_LOG=info "$server" "${common[@]}" --bind 127.0.0.1:0 serve 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do grep -q 'ready' "$tmp/log" && break; sleep 0.1; done
http_url="$(sed -n 's/.*ready.*http=\([^ ]*\).*/\1/p' "$tmp/log" | head -1)"
ws_url="$(sed -n 's/.*ready.*ws=\([^ ]*\).*/\1/p' "$tmp/log" | head -1)"
[ -n "$ws_url" ] || { cat "$tmp/log" >&2; exit 1; }

# No jna.library.path and no LD_LIBRARY_PATH: the library comes from the jar.
env -u LD_LIBRARY_PATH TOKENRELAY_HTTP_URL="$http_url" TOKENRELAY_WS_URL="$ws_url" \
  TOKENRELAY_ORG_ID="$org_id" TOKENRELAY_ORG_KEY="$org_key" \
  java -cp "$out:$cp" example.consumer.ConsumerKt
